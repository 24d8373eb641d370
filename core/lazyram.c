/*
 * lazyram.c - a restored guest's RAM, filled from its snapshot file on demand and
 * verified page by page before anything can read it (snapshot format 2).
 *
 * The RAM slots are anonymous memory registered with a userfaultfd (missing mode), so
 * the first touch of any page, by the guest through KVM (get_user_pages, the emulator's
 * copies) or by the monitor (the VGA screen, virtio, a snapshot save, gdb), stops in
 * the kernel until this file's thread has answered: a hole gets the zero page
 * (UFFDIO_ZEROPAGE); a written page is read from the file (pread), its CRC32C checked
 * against the snapshot's table, and only then copied in (UFFDIO_COPY). Between faults
 * the same thread prefetches the written pages still missing, in file order, a batch at
 * a time (faults are polled between batches, so they wait at most one batch). When
 * every written page is in, the ranges are unregistered (the kernel fills holes itself
 * from then on), the file is closed and the thread ends: the guest no longer depends
 * on the file. One thread, so the page bitmap needs no lock; nothing on its path
 * allocates: every buffer is made at set-up.
 *
 * A page that fails its checksum, or that the file no longer holds (truncated), is
 * never copied in. The thread marks the VM failed (vm->ram_failed, which the vCPU loop
 * checks before every KVM_RUN and after it: HV_EXIT_BAD_RAM, so no device acts on an exit
 * either), kicks every vCPU (request flag, immediate_exit, signal) and holds the fault.
 * Could the kick's signal end a uffd wait inside KVM_RUN? Partly: KVM's own fault-in
 * (get_user_pages with FOLL_INTERRUPTIBLE, Linux 6.3+) is interruptible, but on KVM-PVM
 * (6.18) the shadow MMU reads guest page tables and the emulator fetches instructions
 * with copy_from_user, whose kernel-mode fault only a fatal signal interrupts: measured
 * here, a vCPU faulting on a bad page stayed in KVM_RUN until the fault was answered. So
 * the thread goes on serving good pages until every vCPU has either been seen outside
 * hv_vcpu_run since the failure or is itself held on a bad page (UFFD_FEATURE_THREAD_ID
 * names the waiter), then answers the held faults with the zero page. A held vCPU then
 * finishes its fault with the kick's signal pending, and KVM checks for a pending signal
 * before every guest entry: KVM_RUN returns EINTR and the guest never runs again, let
 * alone sees the bad bytes (an instruction the emulator was fetching may see zeros; its
 * effects stay in the dead guest, and no exit it makes reaches a device). The monitor's
 * own reads of a bad page (the crash report, the VGA screen) get zeros, never the bad
 * bytes, and never hang longer than the settling (FAIL_WAIT_MS at worst, after which
 * vcpus_stuck says so). Other pages go on being served, verified, for the monitor.
 *
 * hv_vm_destroy stops the thread (an eventfd), then closes the uffd, which wakes any
 * thread still waiting in a fault, before the RAM is unmapped.
 */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096ull
#define BATCH 64                 /* pages per prefetch read (256 KiB) */
#define MSGS 32                  /* uffd messages read at a time */
#define FAIL_WAIT_MS 2000
#define HELD_MAX 64

struct lazy_region {
    uint8_t *host;
    uint64_t gpa, size, file_off;
    uint64_t *runs, nruns;       /* (first page, count) pairs, sorted */
    uint64_t *before;            /* written pages of this region before run i */
    uint64_t sum_base;           /* index in sums[] of the region's first written page */
};

struct hv_lazy {
    struct hv_vm *vm;
    int uffd, fd, stop_efd, notify_efd;
    pthread_t thread;
    int thread_started;
    struct lazy_region regions[HV_MAX_SLOTS];
    uint32_t nregions;
    uint32_t *sums;
    uint64_t nsums;
    uint8_t *present;            /* bitmap over sums[] indices: copied in */
    uint64_t npresent;
    uint8_t *buf;                /* BATCH pages, page-aligned */
    uint32_t pf_region;          /* prefetch cursor */
    uint64_t pf_run, pf_page;
    int no_prefetch;             /* HV_LAZY_NO_PREFETCH (tests: faults alone) */
    int failed;                  /* thread-only mirror of stats.state == HV_LAZY_FAILED */
    int released;                /* failed, and every vCPU settled: bad pages get the zero page */
    uint64_t fail_ns;
    uint32_t nheld;              /* faults on bad pages held until every vCPU settled */
    uint64_t held_addr[HELD_MAX];
    uint32_t held_tid[HELD_MAX];
    struct hv_lazy_stats stats;  /* written by the thread; read racily by Python (counters) */
};

/* ---- userfaultfd ---- */

static int open_uffd(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && (errno == EPERM || errno == EACCES)) {
        /* unprivileged_userfaultfd = 0 forbids kernel-mode faults to the syscall without
           CAP_SYS_PTRACE; /dev/userfaultfd (its permissions decide) does not */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev < 0)
            return hv_fail("open /dev/userfaultfd");
#ifdef USERFAULTFD_IOC_NEW
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
#else
        errno = ENOTSUP;
#endif
        int err = errno;
        close(dev);
        if (fd < 0)
            return hv_fail_errno("USERFAULTFD_IOC_NEW", err);
    } else if (fd < 0) {
        return hv_fail("userfaultfd");
    }
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID };
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        int r = hv_fail("UFFDIO_API");
        close(fd);
        return r;
    }
    if (!(api.ioctls & (1ull << _UFFDIO_REGISTER))) {
        close(fd);
        return hv_fail_errno("UFFDIO_API (no UFFDIO_REGISTER)", ENOTSUP);
    }
    return fd;
}

int hv_lazy_available(void)
{
    int fd = open_uffd();
    if (fd < 0)
        return fd;
    close(fd);
    return 1;
}

/* ---- the pages ---- */

static int bit(const uint8_t *map, uint64_t i)
{
    return (map[i / 8] >> (i % 8)) & 1;
}

static void mark_present(struct hv_lazy *l, uint64_t i)
{
    if (!bit(l->present, i))
        l->npresent++;
    l->present[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* The region holding host address a, or NULL. */
static struct lazy_region *region_of(struct hv_lazy *l, uint64_t a)
{
    for (uint32_t i = 0; i < l->nregions; i++) {
        struct lazy_region *r = &l->regions[i];
        uint64_t h = (uint64_t)(uintptr_t)r->host;
        if (a >= h && a - h < r->size)
            return r;
    }
    return NULL;
}

/* The sums[] index of page p of r, or -1 for a hole (binary search over its runs). */
static int64_t sum_index(const struct lazy_region *r, uint64_t p)
{
    uint64_t lo = 0, hi = r->nruns;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (r->runs[2 * mid] + r->runs[2 * mid + 1] <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->nruns || r->runs[2 * lo] > p)
        return -1;
    return (int64_t)(r->sum_base + r->before[lo] + (p - r->runs[2 * lo]));
}

static void signal_efd(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));   /* EAGAIN: it is signalled already */
    (void)w;
}

static void notify(struct hv_lazy *l)
{
    signal_efd(l->notify_efd);
}

/* A written page that fails: the guest ends (see the top of the file). Mark the VM so no
   vCPU enters KVM_RUN again and kick every vCPU; the thread then settles them (settle). */
static void fail(struct hv_lazy *l, uint64_t gpa, int32_t why)
{
    if (l->failed)
        return;
    l->failed = 1;
    l->fail_ns = hv_now_ns();
    l->stats.bad_gpa = gpa;
    l->stats.bad_reason = why;
    atomic_store(&l->vm->ram_failed, 1);
    __atomic_store_n(&l->stats.state, HV_LAZY_FAILED, __ATOMIC_SEQ_CST);
    l->stats.t_done_ns = l->fail_ns;
    struct hv_vm *vm = l->vm;
    pthread_mutex_lock(&vm->vcpus_lock);
    for (struct hv_vcpu *v = vm->vcpus; v; v = v->next_in_vm) {
        v->lazy_seen_out = 0;
        hv_vcpu_kick(v);   /* the signal stays pending in a thread the uffd holds */
    }
    pthread_mutex_unlock(&vm->vcpus_lock);
    notify(l);
}

/* Is every vCPU either seen outside hv_vcpu_run since the failure, or held in a fault on
   a bad page (where its pending kick ends KVM_RUN with EINTR before the guest runs again,
   once the fault is answered)? */
static int vcpus_settled(struct hv_lazy *l)
{
    struct hv_vm *vm = l->vm;
    int all = 1;
    pthread_mutex_lock(&vm->vcpus_lock);
    for (struct hv_vcpu *v = vm->vcpus; v; v = v->next_in_vm) {
        pthread_mutex_lock(&v->kick_lock);
        if (!v->in_run)
            v->lazy_seen_out = 1;
        pthread_mutex_unlock(&v->kick_lock);
        int held = 0;
        uint32_t tid = (uint32_t)atomic_load(&v->tid);
        for (uint32_t i = 0; i < l->nheld && !held; i++)
            held = l->held_tid[i] == tid;
        all &= v->lazy_seen_out | held;
    }
    pthread_mutex_unlock(&vm->vcpus_lock);
    return all;
}

static int serve_faults(struct hv_lazy *l);
static void zero_page(struct hv_lazy *l, uint64_t addr);

/* After a failure: go on serving faults until every vCPU has settled (or FAIL_WAIT_MS),
   then answer the held faults with the zero page. 0, or -1 when told to stop. */
static int settle(struct hv_lazy *l)
{
    struct pollfd pfd[2] = { { .fd = l->uffd, .events = POLLIN }, { .fd = l->stop_efd, .events = POLLIN } };
    while (!vcpus_settled(l)) {
        if (hv_now_ns() - l->fail_ns > FAIL_WAIT_MS * 1000000ull) {
            l->stats.vcpus_stuck = 1;
            break;
        }
        int n = poll(pfd, 2, 1);
        if (n > 0 && (pfd[1].revents & POLLIN))
            return -1;
        if (n > 0 && (pfd[0].revents & POLLIN) && serve_faults(l) < 0)
            return -1;
    }
    l->released = 1;
    for (uint32_t i = 0; i < l->nheld; i++)
        zero_page(l, l->held_addr[i]);
    l->nheld = 0;
    return 0;
}

static int copy_in(struct hv_lazy *l, uint8_t *dst, const uint8_t *src, uint64_t len)
{
    struct uffdio_copy c = { .dst = (uint64_t)(uintptr_t)dst, .src = (uint64_t)(uintptr_t)src, .len = len };
    if (ioctl(l->uffd, UFFDIO_COPY, &c) == 0)
        return 0;
    return -errno;
}

static void wake(struct hv_lazy *l, uint64_t addr)
{
    struct uffdio_range w = { .start = addr, .len = PAGE };
    ioctl(l->uffd, UFFDIO_WAKE, &w);
}

static void zero_page(struct hv_lazy *l, uint64_t addr)
{
    struct uffdio_zeropage z = { .range = { .start = addr, .len = PAGE } };
    if (ioctl(l->uffd, UFFDIO_ZEROPAGE, &z) < 0)
        wake(l, addr);   /* EEXIST: someone's copy won; the waiter only needs waking */
}

/* Read n written pages of r from page p into buf and check each: how many are good
   (n when all are); *why says what the first bad one lacks. */
static uint64_t read_checked(struct hv_lazy *l, struct lazy_region *r, uint64_t p, uint64_t idx,
                             uint64_t n, int32_t *why)
{
    uint64_t want = n * PAGE, got = 0;
    while (got < want) {
        ssize_t k = pread(l->fd, l->buf + got, want - got, (off_t)(r->file_off + p * PAGE + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (uint64_t)k;
    }
    for (uint64_t i = 0; i < n; i++) {
        if ((i + 1) * PAGE > got) {
            *why = HV_LAZY_BAD_SHORT;
            return i;
        }
        if (hv_crc32c(0, l->buf + i * PAGE, PAGE) != l->sums[idx + i]) {
            *why = HV_LAZY_BAD_CHECKSUM;
            return i;
        }
    }
    return n;
}

/* One missing-page fault at host address a, by thread tid. */
static int serve_fault(struct hv_lazy *l, uint64_t a, uint32_t tid)
{
    a &= ~(PAGE - 1);
    struct lazy_region *r = region_of(l, a);
    if (!r) {
        wake(l, a);                           /* not ours: cannot happen; never leave a waiter */
        return 0;
    }
    uint64_t p = (a - (uint64_t)(uintptr_t)r->host) / PAGE;
    int64_t idx = sum_index(r, p);
    l->stats.faults++;
    if (idx < 0) {
        l->stats.zero_faults++;
        zero_page(l, a);
        return 0;
    }
    if (bit(l->present, (uint64_t)idx)) {
        wake(l, a);
        return 0;
    }
    int32_t why = 0;
    if (read_checked(l, r, p, (uint64_t)idx, 1, &why) == 1) {
        int e = copy_in(l, (uint8_t *)(uintptr_t)a, l->buf, PAGE);
        if (e == 0 || e == -EEXIST) {
            mark_present(l, (uint64_t)idx);
            l->stats.fetched_by_fault++;
        }
        if (e)
            wake(l, a);   /* EEXIST: in already; EAGAIN and the like: it faults again, and is asked again */
        return 0;
    }
    fail(l, r->gpa + p * PAGE, why);
    if (l->released || l->nheld == HELD_MAX) {
        zero_page(l, a);      /* no vCPU can run the guest again: a host read gets zeros */
        return 0;
    }
    l->held_addr[l->nheld] = a;
    l->held_tid[l->nheld++] = tid;
    return 0;
}

/* Read and answer the faults queued on the uffd. 0, or -1 when told to stop. */
static int serve_faults(struct hv_lazy *l)
{
    struct uffd_msg msgs[MSGS];
    for (;;) {
        ssize_t n = read(l->uffd, msgs, sizeof(msgs));
        if (n <= 0)
            return 0;                         /* EAGAIN: no more */
        for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++)
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
                serve_fault(l, msgs[i].arg.pagefault.address, msgs[i].arg.pagefault.feat.ptid);
    }
}

/* One prefetch batch: up to BATCH missing written pages of one run. 1 when a batch was
   done, 0 when every written page is in. */
static int prefetch_batch(struct hv_lazy *l)
{
    while (l->pf_region < l->nregions) {
        struct lazy_region *r = &l->regions[l->pf_region];
        if (l->pf_run >= r->nruns) {
            l->pf_region++;
            l->pf_run = l->pf_page = 0;
            continue;
        }
        uint64_t first = r->runs[2 * l->pf_run], count = r->runs[2 * l->pf_run + 1];
        uint64_t base_idx = r->sum_base + r->before[l->pf_run];
        while (l->pf_page < count && bit(l->present, base_idx + l->pf_page))
            l->pf_page++;
        if (l->pf_page >= count) {
            l->pf_run++;
            l->pf_page = 0;
            continue;
        }
        uint64_t n = 0, idx = base_idx + l->pf_page, p = first + l->pf_page;
        while (n < BATCH && l->pf_page + n < count && !bit(l->present, idx + n))
            n++;
        int32_t why = 0;
        uint64_t good = read_checked(l, r, p, idx, n, &why);
        if (good) {
            uint8_t *dst = r->host + p * PAGE;
            if (copy_in(l, dst, l->buf, good * PAGE) == 0) {
                for (uint64_t i = 0; i < good; i++)
                    mark_present(l, idx + i);
                l->stats.prefetched += good;
            } else {
                for (uint64_t i = 0; i < good; i++) {   /* partly in already (EEXIST): page by page */
                    int e = copy_in(l, dst + i * PAGE, l->buf + i * PAGE, PAGE);
                    if (e == 0 || e == -EEXIST) {
                        mark_present(l, idx + i);
                        l->stats.prefetched += e == 0;
                    }
                }
            }
            l->pf_page += good;   /* a page that would not go in is left to its fault */
        }
        if (good < n)
            fail(l, r->gpa + (p + good) * PAGE, why);
        return 1;
    }
    if (l->npresent < l->nsums) {   /* a page that would not go in: another pass */
        l->pf_region = 0;
        l->pf_run = l->pf_page = 0;
        return 1;
    }
    return 0;
}

/* Every written page is in: hand the ranges back to the kernel and let the file go. */
static void finish(struct hv_lazy *l)
{
    for (uint32_t i = 0; i < l->nregions; i++) {
        struct uffdio_range r = { .start = (uint64_t)(uintptr_t)l->regions[i].host, .len = l->regions[i].size };
        ioctl(l->uffd, UFFDIO_UNREGISTER, &r);   /* wakes any waiter: it faults again, normally */
    }
    close(l->fd);
    l->fd = -1;
    l->stats.t_done_ns = hv_now_ns();
    __atomic_store_n(&l->stats.state, HV_LAZY_DONE, __ATOMIC_SEQ_CST);
    notify(l);
}

static void *lazy_thread(void *arg)
{
    struct hv_lazy *l = arg;
    struct pollfd pfd[2] = { { .fd = l->uffd, .events = POLLIN }, { .fd = l->stop_efd, .events = POLLIN } };
    int prefetching = !l->no_prefetch;
    for (;;) {
        if (l->failed && !l->released) {
            if (settle(l) < 0)
                break;
            continue;
        }
        int n = poll(pfd, 2, prefetching && !l->failed ? 0 : -1);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[1].revents & POLLIN)
            break;
        if ((pfd[0].revents & POLLIN) && serve_faults(l) < 0)
            break;
        if (prefetching && !l->failed) {
            if (prefetch_batch(l) == 0 && !l->failed) {
                finish(l);
                break;
            }
        }
    }
    return NULL;
}

/* ---- set-up and teardown ---- */

static void lazy_free(struct hv_lazy *l)
{
    for (uint32_t i = 0; i < HV_MAX_SLOTS; i++) {
        free(l->regions[i].runs);
        free(l->regions[i].before);
    }
    free(l->sums);
    free(l->present);
    free(l->buf);
    if (l->uffd >= 0)
        close(l->uffd);
    if (l->fd >= 0)
        close(l->fd);
    if (l->stop_efd >= 0)
        close(l->stop_efd);
    if (l->notify_efd >= 0)
        close(l->notify_efd);
    free(l);
}

int hv_vm_restore_lazy(struct hv_vm *vm, int fd, const struct hv_lazy_region *regions, uint32_t nregions,
                       const uint32_t *sums, uint64_t nsums, uint32_t flags)
{
    if (vm->lazy || nregions == 0 || nregions > HV_MAX_SLOTS)
        return hv_fail_errno("lazy restore", EINVAL);
    struct hv_lazy *l = calloc(1, sizeof(*l));
    if (!l)
        return hv_fail_errno("lazy restore (allocate)", ENOMEM);
    l->vm = vm;
    l->no_prefetch = !!(flags & HV_LAZY_NO_PREFETCH);
    l->uffd = l->fd = l->stop_efd = l->notify_efd = -1;
    int r;
    uint64_t total = 0;
    for (uint32_t i = 0; i < nregions; i++) {
        const struct hv_lazy_region *in = &regions[i];
        struct hv_ram_slot *s = in->slot < HV_MAX_SLOTS ? &vm->slots[in->slot] : NULL;
        if (!s || !s->host || (in->file_off & (PAGE - 1))) {
            r = hv_fail_errno("lazy restore (no such RAM slot)", EINVAL);
            goto fail;
        }
        struct lazy_region *lr = &l->regions[i];
        *lr = (struct lazy_region){ .host = s->host, .gpa = s->gpa, .size = s->size, .file_off = in->file_off,
                                    .nruns = in->nruns, .sum_base = total };
        lr->runs = malloc((in->nruns ? in->nruns : 1) * 2 * sizeof(uint64_t));
        lr->before = malloc((in->nruns ? in->nruns : 1) * sizeof(uint64_t));
        if (!lr->runs || !lr->before) {
            r = hv_fail_errno("lazy restore (allocate)", ENOMEM);
            goto fail;
        }
        uint64_t end = 0, npages = s->size / PAGE;
        for (uint64_t k = 0; k < in->nruns; k++) {
            uint64_t first = in->runs[2 * k], count = in->runs[2 * k + 1];
            if (first < end || count == 0 || first > npages || count > npages - first) {
                r = hv_fail_errno("lazy restore (page runs out of order or out of the slot)", EINVAL);
                goto fail;
            }
            lr->runs[2 * k] = first;
            lr->runs[2 * k + 1] = count;
            lr->before[k] = total - lr->sum_base;
            total += count;
            end = first + count;
        }
        l->nregions = i + 1;
    }
    if (total != nsums) {
        r = hv_fail_errno("lazy restore (checksum table does not match the page map)", EINVAL);
        goto fail;
    }
    l->nsums = nsums;
    l->sums = malloc((nsums ? nsums : 1) * sizeof(uint32_t));
    l->present = calloc(nsums / 8 + 1, 1);
    if (!l->sums || !l->present || posix_memalign((void **)&l->buf, PAGE, BATCH * PAGE)) {
        r = hv_fail_errno("lazy restore (allocate)", ENOMEM);
        goto fail;
    }
    if (nsums)
        memcpy(l->sums, sums, nsums * sizeof(uint32_t));
    l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (l->fd < 0) {
        r = hv_fail("dup snapshot file");
        goto fail;
    }
    l->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    l->notify_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->stop_efd < 0 || l->notify_efd < 0) {
        r = hv_fail("eventfd (lazy restore)");
        goto fail;
    }
    if ((r = open_uffd()) < 0)
        goto fail;
    l->uffd = r;
    for (uint32_t i = 0; i < l->nregions; i++) {
        struct uffdio_register reg = {
            .range = { .start = (uint64_t)(uintptr_t)l->regions[i].host, .len = l->regions[i].size },
            .mode = UFFDIO_REGISTER_MODE_MISSING,
        };
        if ((r = hv_xioctl(l->uffd, UFFDIO_REGISTER, &reg, "UFFDIO_REGISTER")) < 0)
            goto fail;   /* closing the uffd below unregisters what was */
    }
    l->stats.pages_total = nsums;
    l->stats.t_start_ns = hv_now_ns();
    __atomic_store_n(&l->stats.state, HV_LAZY_RUNNING, __ATOMIC_SEQ_CST);
    int e = pthread_create(&l->thread, NULL, lazy_thread, l);
    if (e) {
        r = hv_fail_errno("pthread_create (lazy restore)", e);
        goto fail;
    }
    l->thread_started = 1;
    vm->lazy = l;
    return 0;
fail:
    lazy_free(l);
    return r;
}

/* Stop the thread and let every waiter go; from hv_vm_destroy, before the RAM goes. */
void hv_lazy_stop(struct hv_vm *vm)
{
    struct hv_lazy *l = vm->lazy;
    if (!l)
        return;
    if (l->thread_started) {
        signal_efd(l->stop_efd);
        pthread_join(l->thread, NULL);
    }
    notify(l);      /* a watcher of the eventfd (Python's, on a dup) learns it is over */
    vm->lazy = NULL;
    lazy_free(l);   /* closing the uffd wakes any thread left waiting in a fault */
}

int hv_lazy_notify_fd(struct hv_vm *vm)
{
    return vm->lazy ? vm->lazy->notify_efd : hv_fail_errno("lazy restore (none)", ENOENT);
}

int hv_lazy_get_stats(struct hv_vm *vm, struct hv_lazy_stats *out)
{
    if (!vm->lazy)
        return hv_fail_errno("lazy restore (none)", ENOENT);
    *out = vm->lazy->stats;
    out->state = __atomic_load_n(&vm->lazy->stats.state, __ATOMIC_SEQ_CST);
    return 0;
}
