/*
 * snapshot.c - guest RAM out to a snapshot file, with no Python per page.
 *
 * hv_vm_save_ram walks one RAM slot and writes its non-zero pages to a file at
 * file_off + (page offset in the slot), leaving every other page a hole (the caller
 * sized the file with ftruncate). It looks only at pages that can hold data: those the
 * process has in memory or in swap (/proc/self/pagemap), plus the caller's hint runs
 * (the pages of the file a restored guest's RAM is mapped from, which read through
 * without being faulted in). So the cost follows touched memory, not guest size. The
 * pages written are reported as runs (first page, page count), sorted.
 *
 * Two failures must not be confused: -E2BIG means the caller's runs[] is too small (ask
 * again with more room); any other -errno is the file's (-ENOSPC: the disk is full).
 */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096ull
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_CHUNK 32768         /* pagemap entries read at a time (256 KiB, one allocation per call) */

static int page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t acc = 0;
    for (size_t i = 0; i < PAGE / 8; i += 8)
        acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
    return acc == 0;
}

static int write_all(int fd, const uint8_t *buf, uint64_t len, uint64_t off)
{
    while (len) {
        ssize_t w = pwrite(fd, buf, len, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return hv_fail("write snapshot RAM");   /* ENOSPC here is a full disk */
        }
        if (w == 0)
            return hv_fail_errno("write snapshot RAM", EIO);
        buf += w;
        len -= (uint64_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

struct saver {
    int fd;
    uint64_t file_off;
    const uint8_t *host;
    uint64_t *runs, max_runs, nruns;
    uint64_t run_first, run_len;    /* the run being gathered */
    uint64_t pages;
};

static int flush_run(struct saver *s)
{
    if (!s->run_len)
        return 0;
    if (s->nruns >= s->max_runs)
        return hv_fail_errno("save guest RAM (more runs than room)", E2BIG);   /* not ENOSPC: that is the disk's */
    int r = write_all(s->fd, s->host + s->run_first * PAGE, s->run_len * PAGE, s->file_off + s->run_first * PAGE);
    if (r < 0)
        return r;
    s->runs[2 * s->nruns] = s->run_first;
    s->runs[2 * s->nruns + 1] = s->run_len;
    s->nruns++;
    s->pages += s->run_len;
    s->run_len = 0;
    return 0;
}

static int consider(struct saver *s, uint64_t page)
{
    if (page_is_zero(s->host + page * PAGE))
        return flush_run(s);
    if (s->run_len && s->run_first + s->run_len == page) {
        s->run_len++;
        return 0;
    }
    int r = flush_run(s);
    s->run_first = page;
    s->run_len = 1;
    return r;
}

int hv_vm_save_ram(struct hv_vm *vm, uint32_t slot, int fd, uint64_t file_off,
                   const uint64_t *hint, uint64_t hint_runs,
                   uint64_t *runs, uint64_t max_runs, uint64_t *pages_written)
{
    if (slot >= HV_MAX_SLOTS || !vm->slots[slot].host || (file_off & (PAGE - 1)))
        return hv_fail_errno("save guest RAM", EINVAL);
    struct saver s = { .fd = fd, .file_off = file_off, .host = vm->slots[slot].host,
                       .runs = runs, .max_runs = max_runs };
    uint64_t npages = vm->slots[slot].size / PAGE;
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t *entries = pm >= 0 ? malloc(PM_CHUNK * sizeof(uint64_t)) : NULL;
    uint64_t h = 0;   /* next hint run */
    int r = 0;
    for (uint64_t base = 0; base < npages && r == 0; base += PM_CHUNK) {
        uint64_t n = npages - base < PM_CHUNK ? npages - base : PM_CHUNK;
        int have_pm = 0;
        if (entries) {
            uint64_t vpage = (uint64_t)(uintptr_t)(s.host + base * PAGE) / PAGE;
            ssize_t got = pread(pm, entries, n * 8, (off_t)(vpage * 8));
            have_pm = got == (ssize_t)(n * 8);
        }
        for (uint64_t i = 0; i < n && r == 0; i++) {
            uint64_t page = base + i;
            while (h < hint_runs && hint[2 * h] + hint[2 * h + 1] <= page)
                h++;
            int hinted = h < hint_runs && hint[2 * h] <= page;
            int maybe = !have_pm || hinted || (entries[i] & (PM_PRESENT | PM_SWAPPED));
            r = maybe ? consider(&s, page) : flush_run(&s);
        }
    }
    if (r == 0)
        r = flush_run(&s);
    if (pm >= 0)
        close(pm);
    free(entries);
    if (r < 0)
        return r;
    *pages_written = s.pages;
    return (int)s.nruns;
}
