/*
 * hvboot.h - the boot ABI between the hvtui monitor and its tiny guests.
 *
 * The monitor (hvtui/vmm/layout.py and cpu.py) sets this up; the guests read it.
 * Keep the two in step: layout.py carries the same numbers.
 *
 * On entry to the ELF entry point, on every vCPU:
 *   - 64-bit long mode, CPL 0, RFLAGS = 0x2 (interrupts off), no IDT (limit 0);
 *   - paging on, identity map of [0, max(4 GiB, top of RAM)) with 2 MiB pages,
 *     present + writable + user (so code may drop to CPL 3 and still touch all RAM);
 *   - GDT: 0x08 kernel code64, 0x10 kernel data, 0x18 user data (DPL 3),
 *     0x20 user code64 (DPL 3); selectors for CPL 3 are 0x1b (data) and 0x23 (code);
 *   - rdi = guest-physical address of this vCPU's struct hv_boot_info;
 *   - rsp = top of this vCPU's own 64 KiB stack (16-byte aligned).
 * RAM sits at [0, low_ram_end) and, when RAM is larger than 3 GiB, also at
 * [4 GiB, 4 GiB + high_ram_size). 3-4 GiB is the MMIO hole.
 */
#ifndef HVBOOT_H
#define HVBOOT_H

#define HV_BOOT_MAGIC   0x42545648u  /* "HVTB" little-endian */
#define HV_BOOT_VERSION 1u

/* Ports */
#define HV_PORT_COM1       0x3f8   /* 16550A, IRQ 4 */
#define HV_PORT_DEBUG_EXIT 0xf4    /* write v (1-4 bytes): guest ends with exit status v */
#define HV_PORT_POST       0x80    /* ignored by the monitor */
#define HV_PORT_PYDEV      0x524   /* a device handled in Python (bench + tests): 4-byte scratch register */
#define HV_PORT_IDLE       0x520   /* paravirtual idle: a 4-byte write of N waits up to N us without
                                      spending a host CPU; input on COM1 (or a host request) ends it early */

#define HV_MMIO_HOLE_START 0xc0000000ull
#define HV_MMIO_UNMAPPED   0xe0000000ull /* an address no device owns */

struct hv_boot_info {
    unsigned int magic;          /* HV_BOOT_MAGIC */
    unsigned int version;        /* HV_BOOT_VERSION */
    unsigned int vcpu_index;     /* 0 .. vcpu_count-1 */
    unsigned int vcpu_count;
    unsigned long long ram_size;      /* bytes of RAM in total */
    unsigned long long low_ram_end;   /* end of RAM below the MMIO hole */
    unsigned long long high_ram_size; /* bytes of RAM at 4 GiB (0 if none) */
    unsigned long long free_start;    /* first free byte after the loaded image (page aligned) */
    unsigned long long free_end;      /* end of free low RAM (stacks of the vCPUs lie above) */
    unsigned long long tsc_khz;       /* TSC frequency */
    unsigned long long cmdline;       /* guest-physical address of a NUL-terminated command line */
    unsigned int cmdline_len;         /* without the NUL */
    unsigned int reserved;
};

#endif
