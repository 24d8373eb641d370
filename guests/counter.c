/* counter - every vCPU prints a numbered line every 100 ms (TSC-timed), forever.
 * vCPU 0: "count N"; vCPU k > 0: "cpuk count N". vCPU 0 first prints "counter: n vcpu(s)". */
#include "hvlib.h"

#define INTERVAL_MS 100

HV_USES_APS;   /* every vCPU counts */

static volatile int header_done;

int main(const struct hv_boot_info *bi)
{
    unsigned idx = bi->vcpu_index;
    u64 interval = hv_ms_to_tsc(INTERVAL_MS), next, n;

    if (idx == 0) {
        hv_printf("counter: %u vcpu(s)\n", bi->vcpu_count);
        header_done = 1;
    } else {
        while (!header_done)
            cpu_relax();
    }

    next = hv_rdtsc();
    for (n = 0;; n++) {
        u64 now;
        if (idx == 0)
            hv_printf("count %llu\n", n);
        else
            hv_printf("cpu%u count %llu\n", idx, n);
        next += interval;
        now = hv_rdtsc();
        /* Fell behind by more than a period (the VM was paused, or the host busy): start the
         * schedule again from now instead of printing a burst of catch-up lines. */
        if ((s64)(now - next) > (s64)interval)
            next = now;
        hv_idle_until(next);
    }
}
