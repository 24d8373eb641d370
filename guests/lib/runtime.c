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

void hv_sleep_us(u64 us)
{
    u64 start = hv_rdtsc();
    u64 ticks = us * hv_tsc_khz / 1000;
    while (hv_rdtsc() - start < ticks)
        cpu_relax();
}

void hv_sleep_ms(u64 ms)
{
    u64 start = hv_rdtsc();
    u64 ticks = hv_ms_to_tsc(ms);
    while (hv_rdtsc() - start < ticks)
        cpu_relax();
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
