/* crash.c - deliberate guest crashes, for the monitor's crash containment. */
#include "hvlib.h"

const char hv_crash_kinds[] = "triple, ud, mmio, hang";

int hv_crash(const char *kind)
{
    if (!hv_strcmp(kind, "triple")) {
        /* Non-canonical load: #GP; with no IDT (limit 0): #DF, then a triple fault. */
        __asm__ volatile("movabs $0x8000000000000000, %%rax\n\t"
                         "mov (%%rax), %%rax" : : : "rax", "memory");
    } else if (!hv_strcmp(kind, "ud")) {
        /* #UD with no IDT: triple fault. */
        __asm__ volatile("ud2");
    } else if (!hv_strcmp(kind, "mmio")) {
        /* 4-byte write to guest-physical memory no device owns: an MMIO exit. */
        *(volatile u32 *)(size_t)HV_MMIO_UNMAPPED = 0x1234;
        return 1;
    } else if (!hv_strcmp(kind, "hang")) {
        /* Interrupts off and an endless loop with no I/O, run at CPL 3 where it is native
         * (a CPL 0 loop is emulated and burns a host CPU inside the emulator).
         * cli happens at CPL 0 only: KVM-PVM runs CPL 3 code with the hardware's own
         * IOPL 0, so cli/sti there raise #GP (with no IDT: a triple fault) even with the
         * guest's IOPL at 3. Code at CPL 3 has interrupts off anyway: start.S and
         * hv_enter_user enter it by iretq with RFLAGS 0x3002 (IF 0) and nothing sets IF. */
        if (hv_cpl() == 0) {
            __asm__ volatile("cli");
            hv_enter_user();
        }
        __asm__ volatile("1:\tjmp 1b" ::: "memory");
    } else {
        return -1;
    }
    for (;;)   /* not reached */
        cpu_relax();
}
