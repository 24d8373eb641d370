/*
 * hvcore.h - the whole C API of the hvtui ioctl core, and the one header cffi reads.
 *
 * Written in the subset of C that cffi's cdef parser accepts: build.py strips the
 * preprocessor guard and #include lines before handing it over. Every function that
 * can fail returns 0 (or a count) on success and -errno on failure, and records the
 * name of the failing operation for hv_last_op() (per thread), so the Python side can
 * raise an exception that names the ioctl.
 */
#ifndef HVCORE_H
#define HVCORE_H
#include <stdint.h>
#include <stddef.h>

/* Why hv_vcpu_run returned to Python (struct hv_exit.reason). */
#define HV_EXIT_REQUEST      1   /* the host asked (pause, stop, peek): see hv_vcpu_kick */
#define HV_EXIT_IO           2   /* port I/O on a port claimed by a Python device */
#define HV_EXIT_MMIO         3   /* MMIO outside RAM: a Python device, or nobody's */
#define HV_EXIT_DEBUG_EXIT   4   /* the guest wrote value to the debug-exit port */
#define HV_EXIT_RESET        5   /* i8042 reset line pulsed (0xfe to port 0x64) */
#define HV_EXIT_SHUTDOWN     6   /* KVM_EXIT_SHUTDOWN: triple fault */
#define HV_EXIT_INTERNAL     7   /* KVM_EXIT_INTERNAL_ERROR (suberror, data[]) */
#define HV_EXIT_FAIL_ENTRY   8   /* KVM_EXIT_FAIL_ENTRY (data[0] = hw reason) */
#define HV_EXIT_SYSTEM_EVENT 9   /* KVM_EXIT_SYSTEM_EVENT (data[0] = type) */
#define HV_EXIT_UNHANDLED   10   /* any other KVM exit (kvm_reason says which) */
#define HV_EXIT_BAD_RAM     11   /* a lazily restored page failed (lazyram.c): the guest cannot run on */

#define HV_NR_KVM_EXITS     64   /* exit reasons counted by number; higher ones in the last slot */
#define HV_PORT_SLOTS       32   /* I/O ports counted one by one per vCPU; the rest in io_other */

#define HV_PORT_COM1        0x3f8
#define HV_PORT_DEBUG_EXIT  0xf4
#define HV_PORT_POST        0x80
#define HV_PORT_IDLE        0x520 /* paravirtual idle: a write of N waits up to N us (input, a kick or the time ends it) */
#define HV_IDLE_MAX_US      1000000
#define HV_PORT_I8042_DATA  0x60
#define HV_PORT_I8042_CMD   0x64
#define HV_COM1_IRQ         4
#define HV_KBD_IRQ          1     /* the i8042's keyboard port */
#define HV_AUX_IRQ          12    /* the i8042's auxiliary (mouse) port */
/* A key for hv_i8042_push_keys: its scancode-set-2 code in bits 0-7, with */
#define HV_KEY_E0           0x0100   /* after an 0xe0 prefix (an extended key) */
#define HV_KEY_BREAK        0x8000   /* its release */
#define HV_KEY_PAUSE        0x0200   /* the Pause key's whole sequence (no release) */
#define HV_UART_RX_FIFO     64
#define HV_CONSOLE_RING     262144

#define HV_IO_IN  0
#define HV_IO_OUT 1

struct hv_exit {
    uint32_t reason;        /* HV_EXIT_* */
    uint32_t kvm_reason;    /* kvm_run.exit_reason */
    uint16_t port;          /* HV_EXIT_IO */
    uint8_t size;           /* HV_EXIT_IO: 1, 2, 4 */
    uint8_t direction;      /* HV_EXIT_IO: HV_IO_IN / HV_IO_OUT */
    uint32_t count;         /* HV_EXIT_IO: repetitions (string I/O) */
    uint8_t *data;          /* HV_EXIT_IO / HV_EXIT_MMIO: the bytes, inside kvm_run (IN: fill them) */
    uint64_t mmio_addr;     /* HV_EXIT_MMIO */
    uint32_t mmio_len;
    uint32_t mmio_is_write;
    uint64_t value;         /* HV_EXIT_DEBUG_EXIT; HV_EXIT_IO: what a single `out` wrote (0 for an `in`) */
    uint32_t suberror;      /* HV_EXIT_INTERNAL */
    uint32_t ndata;
    uint64_t info[16];      /* HV_EXIT_INTERNAL data[], FAIL_ENTRY, SYSTEM_EVENT */
};

struct hv_port_count {
    uint16_t port;
    uint16_t used;
    uint32_t pad;
    uint64_t count;
};

/* Per-vCPU counters: written by the vCPU thread only, read by Python without locks. */
struct hv_vcpu_stats {
    uint64_t exits[64];             /* by KVM exit reason (HV_NR_KVM_EXITS) */
    struct hv_port_count ports[32]; /* I/O exits by port (HV_PORT_SLOTS) */
    uint64_t io_other;              /* I/O exits on ports that found no slot */
    uint64_t runs;                  /* KVM_RUN calls */
    uint64_t kicks;                 /* KVM_RUN calls ended by a kick (EINTR) */
    uint64_t python_exits;          /* returns to Python */
    uint64_t ns_in_run;             /* time inside KVM_RUN */
    uint64_t ns_in_monitor;         /* time between KVM_RUN calls (C + Python) */
    uint64_t unassigned_io;         /* I/O to ports nobody owns (reads see all ones) */
    uint64_t idle_exits;            /* writes to the idle port */
    uint64_t ns_idle;               /* time spent idle for the guest (part of ns_in_monitor) */
};

struct hv_uart_stats {
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    uint64_t rx_overruns;       /* bytes the guest lost because its RX FIFO was full */
    uint64_t console_dropped;   /* oldest console bytes dropped because the ring was full */
    uint64_t rx_pending;        /* bytes in the RX FIFO the guest has not read yet */
};

struct hv_kbd_stats {
    uint64_t keys;              /* host keys the keyboard took */
    uint64_t dropped;           /* of those, lost: scanning was off, or no such key */
    uint8_t leds;               /* bit 0 scroll, 1 num, 2 caps lock, as the guest set them */
    uint8_t scancode_set;       /* 1 or 2 */
    uint8_t scanning;
    uint8_t translating;        /* the controller translates set 2 to set 1 */
    uint32_t pad;
};

struct hv_vm;
struct hv_vcpu;
struct hv_uart;

/* Errors */
const char *hv_last_op(void);

/* The KVM system */
int hv_kvm_open(const char *path);                    /* fd or -errno */
int hv_kvm_check(int kvm_fd, char *missing, size_t missing_len); /* 0, or -ENOTSUP with the missing capability named */
int hv_kvm_check_extension(int kvm_fd, long cap);
int hv_kvm_max_vcpus(int kvm_fd);
int hv_kvm_vcpu_mmap_size(int kvm_fd);
int hv_kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 *cpuid);
int hv_kvm_get_msr_index_list(int kvm_fd, struct kvm_msr_list *list);
int hv_kvm_is_pvm(void);                              /* 1 when the kvm_pvm module is loaded */

/* The VM: in-kernel irqchip, COM1, i8042, debug exit; the PIT when asked for */
int hv_vm_create(int kvm_fd, struct hv_vm **out);
int hv_vm_create_pit(struct hv_vm *vm);   /* the in-kernel 8254 (the PC platform's); once */
void hv_vm_destroy(struct hv_vm *vm);
int hv_vm_warm(struct hv_vm *vm);   /* pay KVM's one-time cost of a VM's first memory slot now */
int hv_vm_fd(struct hv_vm *vm);
int hv_vm_map_ram(struct hv_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, int fd, uint64_t offset, void **host);
uint64_t hv_vm_resident_bytes(struct hv_vm *vm);          /* RAM pages resident in host memory, in bytes */
int hv_vm_claim_ports(struct hv_vm *vm, uint16_t first, uint32_t count);  /* give ports to Python devices */
int hv_vm_irq_line(struct hv_vm *vm, uint32_t irq, uint32_t level);
int hv_vm_get_irqchip(struct hv_vm *vm, struct kvm_irqchip *chip);
int hv_vm_set_irqchip(struct hv_vm *vm, struct kvm_irqchip *chip);
int hv_vm_get_pit2(struct hv_vm *vm, struct kvm_pit_state2 *pit);
int hv_vm_set_pit2(struct hv_vm *vm, struct kvm_pit_state2 *pit);
int hv_vm_get_clock(struct hv_vm *vm, struct kvm_clock_data *clock);
int hv_vm_set_clock(struct hv_vm *vm, struct kvm_clock_data *clock);
int hv_vm_ioeventfd(struct hv_vm *vm, struct kvm_ioeventfd *ioeventfd);
int hv_vm_irqfd(struct hv_vm *vm, struct kvm_irqfd *irqfd);

/* COM1 and the console ring */
int hv_console_fd(struct hv_vm *vm);                  /* eventfd: readable when the ring is non-empty */
size_t hv_console_read(struct hv_vm *vm, uint8_t *buf, size_t len);
size_t hv_uart_push_rx(struct hv_vm *vm, const uint8_t *buf, size_t len); /* bytes accepted */
void hv_vm_wake_idle(struct hv_vm *vm);               /* end the idle-port wait of every vCPU (new input) */
void hv_uart_get_stats(struct hv_vm *vm, struct hv_uart_stats *out);
size_t hv_uart_state_size(void);
void hv_uart_save(struct hv_vm *vm, void *out);
int hv_uart_restore(struct hv_vm *vm, const void *in, size_t len);
size_t hv_i8042_state_size(void);
void hv_i8042_save(struct hv_vm *vm, void *out);
int hv_i8042_restore(struct hv_vm *vm, const void *in, size_t len);
size_t hv_i8042_push_keys(struct hv_vm *vm, const uint16_t *keys, size_t n); /* whole keys taken (HV_KEY_*) */
void hv_i8042_get_stats(struct hv_vm *vm, struct hv_kbd_stats *out);

/* Snapshots (snapshot.c): the non-zero pages of a RAM slot out to fd at file_off + their
   offset, holes elsewhere; runs[] gets (first page, count) pairs. Returns the number of
   runs, -E2BIG when more than max_runs (-ENOSPC is a full disk). hint: runs of pages that may hold data unseen
   by /proc/self/pagemap (a restored guest's file-backed RAM), or NULL. */
int hv_vm_save_ram(struct hv_vm *vm, uint32_t slot, int fd, uint64_t file_off,
                   const uint64_t *hint, uint64_t hint_runs,
                   uint64_t *runs, uint64_t max_runs, uint64_t *pages_written);

/* CRC32C (crc32c.c): the standard one (crc 0 to start; pass a result to continue). */
uint32_t hv_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t hv_crc32c_sw(uint32_t crc, const void *buf, size_t len);   /* the table */
uint32_t hv_crc32c_hw(uint32_t crc, const void *buf, size_t len);   /* SSE4.2 (the table without it) */
int hv_crc32c_hw_available(void);
void hv_crc32c_pages(const uint8_t *base, const uint64_t *runs, uint64_t nruns, uint32_t *sums);
int hv_crc32c_check_pages(const uint8_t *base, const uint64_t *runs, uint64_t nruns,
                          const uint32_t *sums, uint64_t *bad_page);

/* Lazy restore (lazyram.c): a restored guest's RAM slots (mapped anonymous) filled from
   the snapshot file on first touch through a userfaultfd, each written page checked
   against its CRC32C first; the rest prefetched in the background. */
#define HV_LAZY_RUNNING       1   /* serving faults, prefetching */
#define HV_LAZY_DONE          2   /* every written page is in; the file is closed */
#define HV_LAZY_FAILED        3   /* a page failed: bad_gpa, bad_reason; no vCPU runs again */
#define HV_LAZY_BAD_CHECKSUM  1
#define HV_LAZY_BAD_SHORT     2   /* the file ends before the page (truncated) */
struct hv_lazy_region {
    uint32_t slot;
    uint32_t pad;
    uint64_t file_off;            /* where the slot's page 0 is in the file */
    const uint64_t *runs;         /* (first page, count) pairs of its written pages, sorted */
    uint64_t nruns;
};
struct hv_lazy_stats {
    int32_t state;                /* HV_LAZY_* */
    int32_t bad_reason;           /* HV_LAZY_BAD_* */
    uint64_t bad_gpa;
    uint64_t pages_total;         /* written pages in the file */
    uint64_t prefetched;          /* of those, copied in by the prefetch */
    uint64_t fetched_by_fault;    /* ... and by a fault */
    uint64_t faults;              /* missing-page faults served */
    uint64_t zero_faults;         /* of those, holes (the zero page) */
    uint64_t t_start_ns;          /* CLOCK_MONOTONIC */
    uint64_t t_done_ns;           /* DONE or FAILED */
    uint32_t vcpus_stuck;         /* a vCPU did not leave KVM_RUN when kicked (see lazyram.c) */
    uint32_t pad;
};
int hv_lazy_available(void);      /* 1, or -errno: no userfaultfd this process may use */
int hv_vm_restore_lazy(struct hv_vm *vm, int fd, const struct hv_lazy_region *regions, uint32_t nregions,
                       const uint32_t *sums, uint64_t nsums, uint32_t flags);
#define HV_LAZY_NO_PREFETCH   1   /* flags: serve faults only (tests) */
int hv_lazy_notify_fd(struct hv_vm *vm);   /* eventfd: readable on DONE or FAILED */
int hv_lazy_get_stats(struct hv_vm *vm, struct hv_lazy_stats *out);

/* vCPUs */
int hv_vcpu_create(struct hv_vm *vm, uint32_t index, struct hv_vcpu **out);
void hv_vcpu_destroy(struct hv_vcpu *vcpu);
int hv_vcpu_fd(struct hv_vcpu *vcpu);
int hv_vcpu_run(struct hv_vcpu *vcpu, struct hv_exit *exit);   /* releases the GIL (cffi) */
void hv_vcpu_kick(struct hv_vcpu *vcpu);              /* sets the request flag, immediate_exit and signals the thread */
void hv_vcpu_clear_request(struct hv_vcpu *vcpu);
int hv_vcpu_complete_io(struct hv_vcpu *vcpu);        /* finish a pending I/O exit without running the guest (parked vCPU) */
struct hv_vcpu_stats *hv_vcpu_stats(struct hv_vcpu *vcpu);
int hv_vcpu_thread_id(struct hv_vcpu *vcpu);          /* Linux tid of the thread last in hv_vcpu_run, 0 before */
int64_t hv_vcpu_cpu_ns(struct hv_vcpu *vcpu);         /* CPU time of that thread (its clock), -errno when gone or none yet */
uint64_t hv_vcpu_exit_total(struct hv_vcpu *vcpu);    /* the exits counted by reason, summed */
int hv_bench_raw_loop(struct hv_vcpu *vcpu, uint16_t stop_port, uint64_t *io_exits);

int hv_vcpu_get_regs(struct hv_vcpu *v, struct kvm_regs *regs);
int hv_vcpu_set_regs(struct hv_vcpu *v, struct kvm_regs *regs);
int hv_vcpu_get_sregs(struct hv_vcpu *v, struct kvm_sregs *sregs);
int hv_vcpu_set_sregs(struct hv_vcpu *v, struct kvm_sregs *sregs);
int hv_vcpu_get_fpu(struct hv_vcpu *v, struct kvm_fpu *fpu);
int hv_vcpu_set_fpu(struct hv_vcpu *v, struct kvm_fpu *fpu);
int hv_vcpu_get_xsave(struct hv_vcpu *v, void *buf, size_t len);  /* len >= hv_xsave_size */
int hv_vcpu_set_xsave(struct hv_vcpu *v, void *buf, size_t len);
int hv_xsave_size(int kvm_fd);
int hv_vcpu_get_xcrs(struct hv_vcpu *v, struct kvm_xcrs *xcrs);
int hv_vcpu_set_xcrs(struct hv_vcpu *v, struct kvm_xcrs *xcrs);
int hv_vcpu_get_msrs(struct hv_vcpu *v, struct kvm_msrs *msrs);  /* returns how many were read */
int hv_vcpu_set_msrs(struct hv_vcpu *v, struct kvm_msrs *msrs);  /* returns how many were written */
int hv_vcpu_set_cpuid(struct hv_vcpu *v, struct kvm_cpuid2 *cpuid);
int hv_vcpu_get_lapic(struct hv_vcpu *v, struct kvm_lapic_state *lapic);
int hv_vcpu_set_lapic(struct hv_vcpu *v, struct kvm_lapic_state *lapic);
int hv_vcpu_get_events(struct hv_vcpu *v, struct kvm_vcpu_events *events);
int hv_vcpu_set_events(struct hv_vcpu *v, struct kvm_vcpu_events *events);
int hv_vcpu_get_mp_state(struct hv_vcpu *v, struct kvm_mp_state *mp);
int hv_vcpu_set_mp_state(struct hv_vcpu *v, struct kvm_mp_state *mp);
int hv_vcpu_get_debugregs(struct hv_vcpu *v, struct kvm_debugregs *dregs);
int hv_vcpu_set_debugregs(struct hv_vcpu *v, struct kvm_debugregs *dregs);
int hv_vcpu_get_tsc_khz(struct hv_vcpu *v);
int hv_vcpu_translate(struct hv_vcpu *v, struct kvm_translation *tr);

/* Guest debugging (the gdb server, hvtui/gdb): KVM_EXIT_DEBUG returns to Python as
   HV_EXIT_DEBUG with info[0] = exception (1 #DB, 3 #BP), info[1] = pc, info[2] = dr6,
   info[3] = dr7. debugreg: DR0-DR7 as KVM_SET_GUEST_DEBUG takes them (NULL: all zero). */
#define HV_EXIT_DEBUG       16
int hv_vcpu_set_guest_debug(struct hv_vcpu *v, uint32_t control, const uint64_t *debugreg);

#endif
