/* mem.c - free RAM ranges and a write/verify pattern (run it at CPL 3: it is native there). */
#include "hvlib.h"

#define HIGH_RAM_START 0x100000000ull

int hv_free_ranges(const struct hv_boot_info *bi, struct hv_mem_range out[2])
{
    int n = 0;
    u64 lo = (bi->free_start + 0xfff) & ~0xfffull, hi = bi->free_end & ~0xfffull;
    if (hi > lo) {
        out[n].start = lo;
        out[n].end = hi;
        n++;
    }
    if (bi->high_ram_size >= 0x1000) {
        out[n].start = HIGH_RAM_START;
        out[n].end = HIGH_RAM_START + (bi->high_ram_size & ~0xfffull);
        n++;
    }
    return n;
}

u64 hv_mem_pattern(u64 addr, u64 seed)
{
    u64 x = addr ^ seed;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 32);
}

void hv_mem_fill(u64 start, u64 end, u64 seed)
{
    volatile u64 *p = (volatile u64 *)(size_t)start;
    for (; (u64)(size_t)p < end; p++)
        *p = hv_mem_pattern((u64)(size_t)p, seed);
}

u64 hv_mem_check(u64 start, u64 end, u64 seed, u64 *got, u64 *want)
{
    volatile u64 *p = (volatile u64 *)(size_t)start;
    for (; (u64)(size_t)p < end; p++) {
        u64 w = hv_mem_pattern((u64)(size_t)p, seed), g = *p;
        if (g != w) {
            if (got)
                *got = g;
            if (want)
                *want = w;
            return (u64)(size_t)p;
        }
    }
    return 0;
}
