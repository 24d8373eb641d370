/* crash - crashes on purpose, in the way named by the first word of the command line:
 *   triple  load from 0x8000000000000000 (non-canonical), no IDT  -> triple fault
 *   ud      ud2, no IDT                                           -> triple fault
 *   mmio    4-byte write of 0x1234 to 0xe0000000 (no device)      -> MMIO exit, which the
 *           monitor ignores (nobody owns that address): the guest reads it back (all ones)
 *   hang    cli, then an endless loop with no I/O (at CPL 3)      -> no exit at all
 * Empty command line: triple. The word "cpl=3" anywhere: crash from CPL 3 instead of CPL 0.
 * Unknown kind: error line, exit status 2. mmio that returns (the monitor ignored the write):
 * a line saying so and what a read there gives, exit status 1. */
#include "hvlib.h"

HV_STAY_AT_CPL0;   /* the crash itself happens at CPL 0 (the shell's "crash" does it at CPL 3) */

int main(const struct hv_boot_info *bi)
{
    const char *cmd = hv_cmdline(bi);
    char kind[32];
    int r;
    u64 cpl;

    if (bi->vcpu_index != 0) {
        hv_enter_user();         /* spin natively, not in the emulator */
        hv_park();
    }
    if (!hv_word(cmd, 0, kind, sizeof kind) || !hv_strncmp(kind, "cpl=", 4)) {
        __builtin_memcpy(kind, "triple", 7);
    }
    cpl = hv_get_num(cmd, "cpl", 0, NULL);
    if (cpl == 3)
        hv_enter_user();
    hv_printf("crash: %s\n", kind);
    r = hv_crash(kind);
    if (r < 0) {
        hv_printf("crash: unknown kind '%s' (kinds: %s)\n", kind, hv_crash_kinds);
        return 2;
    }
    hv_printf("crash: the mmio write to 0x%llx came back: the monitor ignored it; it reads 0x%x\n",
              (u64)HV_MMIO_UNMAPPED, *(volatile u32 *)HV_MMIO_UNMAPPED);
    return 1;
}
