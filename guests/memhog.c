/* memhog - writes a pattern over every 4 KiB page of free RAM (low free RAM, then RAM at
 * 4 GiB), verifies it, and exits 0 ("memhog: touched T MiB, ok"), or 1 on a mismatch.
 * Command line: mib=N touches at most N MiB. Progress "memhog: k MiB" every 16 MiB. */
#include "hvlib.h"

#define MIB (1ull << 20)
#define CHUNK (16 * MIB)
#define SEED 0x6d656d686f670001ull

int main(const struct hv_boot_info *bi)
{
    struct hv_mem_range r[2];
    int nr, i, ok;
    u64 limit, total = 0, done = 0;

    nr = hv_free_ranges(bi, r);
    for (i = 0; i < nr; i++)
        total += r[i].end - r[i].start;
    limit = hv_get_num(hv_cmdline(bi), "mib", ~0ull, &ok);
    if (!ok) {
        hv_printf("memhog: bad mib= value in '%s'\n", hv_cmdline(bi));
        return 2;
    }
    if (limit != ~0ull && limit * MIB < total)
        total = limit * MIB;
    hv_printf("memhog: touching %llu MiB (low %llu MiB at 0x%llx, high %llu MiB)\n",
              total / MIB, (nr && r[0].start < 0x100000000ull ? r[0].end - r[0].start : 0) / MIB,
              nr ? r[0].start : 0, bi->high_ram_size / MIB);

    /* Write, 16 MiB at a time, with a progress line after each full 16 MiB. */
    for (i = 0; i < nr && done < total; i++) {
        u64 a = r[i].start;
        while (a < r[i].end && done < total) {
            u64 step = CHUNK - (done % CHUNK), e;
            if (step > r[i].end - a)
                step = r[i].end - a;
            if (step > total - done)
                step = total - done;
            e = a + step;
            hv_mem_fill(a, e, SEED);
            done += step;
            a = e;
            if (done % CHUNK == 0)
                hv_printf("memhog: %llu MiB\n", done / MIB);
        }
    }

    /* Verify all of it. */
    done = 0;
    for (i = 0; i < nr && done < total; i++) {
        u64 step = r[i].end - r[i].start, bad, got = 0, want = 0;
        if (step > total - done)
            step = total - done;
        bad = hv_mem_check(r[i].start, r[i].start + step, SEED, &got, &want);
        if (bad) {
            hv_printf("memhog: MISMATCH at 0x%llx: read 0x%llx, wrote 0x%llx\n", bad, got, want);
            return 1;
        }
        done += step;
    }
    hv_printf("memhog: touched %llu MiB, ok\n", done / MIB);
    return 0;
}
