/* runtime.c - exit, park, TSC delays, spinlock. */
#include "hvlib.h"

/* start.S repeats these two numbers of hvboot.h (it cannot include the C header). */
_Static_assert(HV_BOOT_MAGIC == 0x42545648u, "start.S has its own copy of HV_BOOT_MAGIC");
_Static_assert(HV_PORT_DEBUG_EXIT == 0xf4, "start.S has its own copy of HV_PORT_DEBUG_EXIT");

volatile u64 hv_tsc_khz;
static volatile u64 boot_tsc;

void hv_runtime_init(const struct hv_boot_info *bi)
{
    u64 khz = bi->tsc_khz ? bi->tsc_khz : 1000000;   /* guess 1 GHz if the monitor gave 0 */
    hv_tsc_khz = khz;                                /* same value from every vCPU */
    if (bi->vcpu_index == 0 && !boot_tsc)
        boot_tsc = hv_rdtsc();
}

void hv_exit(u32 status)
{
    outl(HV_PORT_DEBUG_EXIT, status);
    /* Only reached if the monitor ignored the write. */
    for (;;) {
        if (hv_cpl() == 0)
            __asm__ volatile("hlt");
        else
            cpu_relax();
    }
}

void hv_park(void)
{
    for (;;)
        cpu_relax();
}

u64 hv_ms_to_tsc(u64 ms) { return ms * hv_tsc_khz; }

/* Idle until the TSC reaches deadline: the monitor's idle port sleeps the vCPU (it may end
 * early, on input or a host request; the loop goes back for the rest). */
void hv_idle_until(u64 deadline)
{
    for (;;) {
        u64 now = hv_rdtsc();
        if ((s64)(deadline - now) <= 0)
            return;
        u64 us = (deadline - now) * 1000 / hv_tsc_khz;
        outl(HV_PORT_IDLE, (u32)(us > 1000000 ? 1000000 : us ? us : 1));
    }
}

void hv_sleep_us(u64 us)
{
    hv_idle_until(hv_rdtsc() + us * hv_tsc_khz / 1000);
}

void hv_sleep_ms(u64 ms)
{
    hv_idle_until(hv_rdtsc() + hv_ms_to_tsc(ms));
}

u64 hv_uptime_ms(void)
{
    return (hv_rdtsc() - boot_tsc) / hv_tsc_khz;
}

void hv_spin_lock(hv_spinlock_t *l)
{
    for (;;) {
        u32 old = 1;
        __asm__ volatile("xchgl %0, %1" : "+r"(old), "+m"(l->v) : : "memory");
        if (old == 0)
            return;
        while (l->v)
            cpu_relax();
    }
}

void hv_spin_unlock(hv_spinlock_t *l)
{
    __asm__ volatile("" ::: "memory");
    l->v = 0;
}
