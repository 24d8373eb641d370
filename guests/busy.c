/* busy - computes at CPL 0 with interrupts off and makes no exit at all for `seconds=N`
 * (default 60) by the TSC, then prints how many rounds it did and exits 0. On KVM-PVM every
 * CPL-0 instruction runs in KVM's emulator, so this is what an early-boot kernel or a test
 * kernel looks like to the monitor: busy, healthy, silent. */
#include "hvlib.h"

HV_STAY_AT_CPL0;

int main(const struct hv_boot_info *bi)
{
    u64 seconds = hv_get_num(hv_cmdline(bi), "seconds", 60, NULL);
    u64 deadline = hv_rdtsc() + seconds * 1000 * hv_tsc_khz;
    u64 rounds = 0, x = 1;

    if (bi->vcpu_index != 0)
        hv_park();
    hv_printf("busy: computing for %llu s with interrupts off\n", seconds);
    while (hv_rdtsc() < deadline) {
        for (int i = 0; i < 1000; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        rounds++;
    }
    hv_printf("busy: done, %llu rounds (%llx)\n", rounds, x);
    return 0;
}
