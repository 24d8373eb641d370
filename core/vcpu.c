/*
 * vcpu.c - a vCPU: its kvm_run mapping, the exit loop, the kick, and its counters.
 *
 * hv_vcpu_run loops on KVM_RUN and serves the hot exits itself (vm.c), with no
 * allocation and no Python; it returns only for an exit that C does not own, a host
 * request, or an end. The kick: the host sets the request flag and immediate_exit and
 * signals the thread, whose handler does nothing; KVM_RUN returns EINTR (or never
 * enters, thanks to immediate_exit) and the loop sees the flag.
 */
#define _GNU_SOURCE   /* ppoll */
#include "internal.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

static int kick_signal(void)
{
    return SIGRTMIN + 3;
}

static void kick_handler(int sig)
{
    (void)sig;
}

static void install_kick_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_handler;   /* no SA_RESTART: KVM_RUN must return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(kick_signal(), &sa, NULL);
}

int hv_vcpu_create(struct hv_vm *vm, uint32_t index, struct hv_vcpu **out)
{
    pthread_once(&signal_once, install_kick_handler);
    struct hv_vcpu *v = calloc(1, sizeof(*v));
    if (!v)
        return hv_fail_errno("allocate vCPU", ENOMEM);
    v->vm = vm;
    v->index = index;
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (v->fd < 0) {
        int r = hv_fail("KVM_CREATE_VCPU");
        free(v);
        return r;
    }
    v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        int r = hv_fail("mmap kvm_run");
        close(v->fd);
        free(v);
        return r;
    }
    v->kick_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (v->kick_efd < 0) {
        int r = hv_fail("eventfd (vCPU kick)");
        munmap(v->run, (size_t)vm->run_size);
        close(v->fd);
        free(v);
        return r;
    }
    pthread_mutex_init(&v->kick_lock, NULL);
    atomic_init(&v->request, 0);
    atomic_init(&v->tid, 0);
    atomic_init(&v->cpu_clock, 0);
    atomic_init(&v->cpu_clock_set, 0);
    pthread_mutex_lock(&vm->vcpus_lock);   /* lazyram.c may kick it */
    v->next_in_vm = vm->vcpus;
    vm->vcpus = v;
    pthread_mutex_unlock(&vm->vcpus_lock);
    *out = v;
    return 0;
}

void hv_vcpu_destroy(struct hv_vcpu *v)
{
    if (!v)
        return;
    pthread_mutex_lock(&v->vm->vcpus_lock);
    for (struct hv_vcpu **p = &v->vm->vcpus; *p; p = &(*p)->next_in_vm)
        if (*p == v) {
            *p = v->next_in_vm;
            break;
        }
    pthread_mutex_unlock(&v->vm->vcpus_lock);
    munmap(v->run, (size_t)v->vm->run_size);
    close(v->fd);
    close(v->kick_efd);
    pthread_mutex_destroy(&v->kick_lock);
    free(v);
}

int hv_vcpu_fd(struct hv_vcpu *v)
{
    return v->fd;
}

struct hv_vcpu_stats *hv_vcpu_stats(struct hv_vcpu *v)
{
    return &v->stats;
}

int hv_vcpu_thread_id(struct hv_vcpu *v)
{
    return atomic_load(&v->tid);
}

/*
 * The vCPU thread's CPU time, read by the monitor's sampler from its own thread: one
 * clock_gettime on the thread's CPU clock, where /proc/self/task/TID/stat would be an
 * open, a read and a parse per thread per sample (and has only 10 ms ticks). A thread
 * that has ended gives -EINVAL.
 */
int64_t hv_vcpu_cpu_ns(struct hv_vcpu *v)
{
    if (!atomic_load(&v->tid) || !atomic_load(&v->cpu_clock_set))
        return -ESRCH;
    struct timespec ts;
    if (clock_gettime((clockid_t)atomic_load(&v->cpu_clock), &ts) < 0)
        return -errno;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t hv_vcpu_exit_total(struct hv_vcpu *v)
{
    uint64_t n = 0;
    for (int i = 0; i < HV_NR_KVM_EXITS; i++)
        n += v->stats.exits[i];
    return n;
}

void hv_vcpu_kick(struct hv_vcpu *v)
{
    pthread_mutex_lock(&v->kick_lock);
    atomic_store(&v->request, 1);
    v->run->immediate_exit = 1;
    if (v->in_run)
        pthread_kill(v->thread, kick_signal());
    uint64_t one = 1;
    ssize_t w = write(v->kick_efd, &one, sizeof(one));   /* wakes an idle-port wait */
    (void)w;
    pthread_mutex_unlock(&v->kick_lock);
}

static void drain(int efd)
{
    uint64_t count;
    ssize_t r = read(efd, &count, sizeof(count));
    (void)r;
}

void hv_vcpu_clear_request(struct hv_vcpu *v)
{
    pthread_mutex_lock(&v->kick_lock);
    atomic_store(&v->request, 0);
    v->run->immediate_exit = 0;
    drain(v->kick_efd);
    pthread_mutex_unlock(&v->kick_lock);
}

/*
 * A vCPU that left KVM_RUN on an I/O or MMIO exit has the instruction half done: KVM
 * finishes it (writes rax, moves rip) on the next KVM_RUN. Before its state is saved,
 * one KVM_RUN with immediate_exit set completes it and returns EINTR without running
 * the guest. Only for a vCPU that is not inside hv_vcpu_run (parked or never started).
 */
int hv_vcpu_complete_io(struct hv_vcpu *v)
{
    pthread_mutex_lock(&v->kick_lock);
    if (v->in_run) {
        pthread_mutex_unlock(&v->kick_lock);
        return hv_fail_errno("complete pending I/O (vCPU is running)", EBUSY);
    }
    uint8_t saved = v->run->immediate_exit;
    v->run->immediate_exit = 1;
    int r = ioctl(v->fd, KVM_RUN, 0);
    int err = errno;
    v->run->immediate_exit = saved;
    pthread_mutex_unlock(&v->kick_lock);
    if (r < 0 && err != EINTR && err != EAGAIN)
        return hv_fail_errno("KVM_RUN (complete pending I/O)", err);
    return 0;
}

static void count_port(struct hv_vcpu_stats *s, uint16_t port)
{
    unsigned h = (port * 2654435761u) >> 27;   /* 32 slots */
    for (unsigned i = 0; i < HV_PORT_SLOTS; i++) {
        struct hv_port_count *slot = &s->ports[(h + i) % HV_PORT_SLOTS];
        if (slot->used && slot->port == port) {
            slot->count++;
            return;
        }
        if (!slot->used) {
            slot->port = port;
            slot->count = 1;
            slot->used = 1;
            return;
        }
    }
    s->io_other++;
}

static void fill_exit_data(struct hv_exit *e, const __u64 *data, uint32_t n)
{
    e->ndata = n > 16 ? 16 : n;
    for (uint32_t i = 0; i < e->ndata; i++)
        e->info[i] = data[i];
}

/* Turn a non-I/O exit into *e. */
static void describe_exit(struct kvm_run *run, struct hv_exit *e)
{
    switch (run->exit_reason) {
    case KVM_EXIT_MMIO:
        e->reason = HV_EXIT_MMIO;
        e->mmio_addr = run->mmio.phys_addr;
        e->mmio_len = run->mmio.len;
        e->mmio_is_write = run->mmio.is_write;
        e->data = run->mmio.data;
        break;
    case KVM_EXIT_SHUTDOWN:
        e->reason = HV_EXIT_SHUTDOWN;
        break;
    case KVM_EXIT_INTERNAL_ERROR:
        e->reason = HV_EXIT_INTERNAL;
        e->suberror = run->internal.suberror;
        fill_exit_data(e, run->internal.data, run->internal.ndata);
        break;
    case KVM_EXIT_FAIL_ENTRY:
        e->reason = HV_EXIT_FAIL_ENTRY;
        e->info[0] = run->fail_entry.hardware_entry_failure_reason;
        e->ndata = 1;
        break;
    case KVM_EXIT_DEBUG:
        e->reason = HV_EXIT_DEBUG;
        e->info[0] = run->debug.arch.exception;
        e->info[1] = run->debug.arch.pc;
        e->info[2] = run->debug.arch.dr6;
        e->info[3] = run->debug.arch.dr7;
        e->ndata = 4;
        break;
    case KVM_EXIT_SYSTEM_EVENT:
        e->reason = HV_EXIT_SYSTEM_EVENT;
        e->info[0] = run->system_event.type;
        e->ndata = 1;
        break;
    default:
        e->reason = HV_EXIT_UNHANDLED;
        break;
    }
}

/*
 * The idle port: the guest has nothing to do for up to us microseconds. Sleep without
 * spending a host CPU until then, until input reaches the UART or the host wakes idle
 * vCPUs (hv_vm_wake_idle: rx_efd), or until the host kicks this vCPU (kick_efd, written
 * after the request flag is set, so a kick between the check and the poll still wakes it).
 * One poll for the whole wait: no periodic wake-ups.
 */
static void idle(struct hv_vcpu *v, uint64_t us)
{
    struct hv_vm *vm = v->vm;
    uint64_t start = hv_now_ns();
    uint64_t deadline = start + (us > HV_IDLE_MAX_US ? HV_IDLE_MAX_US : us) * 1000;
    struct pollfd pfd[2] = { { .fd = vm->rx_efd, .events = POLLIN }, { .fd = v->kick_efd, .events = POLLIN } };
    for (;;) {
        if (atomic_load(&v->request) || hv_vm_rx_pending(vm))
            break;
        uint64_t now = hv_now_ns();
        if (now >= deadline)
            break;
        struct timespec ts = { .tv_sec = (time_t)((deadline - now) / 1000000000u),
                               .tv_nsec = (long)((deadline - now) % 1000000000u) };
        int n = ppoll(pfd, 2, &ts, NULL);
        if (n > 0) {
            if (pfd[0].revents & POLLIN)   /* input, or the host woke idle vCPUs */
                drain(vm->rx_efd);
            break;                         /* a kick stays readable until the request is cleared */
        }
    }
    v->stats.idle_exits++;
    v->stats.ns_idle += hv_now_ns() - start;
}

static int run_loop(struct hv_vcpu *v, struct hv_exit *e)
{
    struct kvm_run *run = v->run;
    struct hv_vcpu_stats *s = &v->stats;
    for (;;) {
        if (atomic_load_explicit(&v->request, memory_order_acquire)) {
            e->reason = HV_EXIT_REQUEST;
            return 0;
        }
        if (atomic_load_explicit(&v->vm->ram_failed, memory_order_acquire)) {   /* lazyram.c */
            e->reason = HV_EXIT_BAD_RAM;
            return 0;
        }
        uint64_t t0 = hv_now_ns();
        if (v->t_last)
            s->ns_in_monitor += t0 - v->t_last;
        int r = ioctl(v->fd, KVM_RUN, 0);
        int err = errno;
        uint64_t t1 = hv_now_ns();
        s->ns_in_run += t1 - t0;
        s->runs++;
        v->t_last = t1;
        if (r < 0) {
            if (err == EINTR || err == EAGAIN) {
                s->kicks++;
                continue;
            }
            return hv_fail_errno("KVM_RUN", err);
        }
        if (atomic_load_explicit(&v->vm->ram_failed, memory_order_acquire)) {   /* no device acts for it */
            e->reason = HV_EXIT_BAD_RAM;
            return 0;
        }
        uint32_t reason = run->exit_reason;
        s->exits[reason < HV_NR_KVM_EXITS ? reason : HV_NR_KVM_EXITS - 1]++;
        e->kvm_reason = reason;
        if (reason == KVM_EXIT_IO) {
            count_port(s, run->io.port);
            if (run->io.port == HV_PORT_IDLE && run->io.direction == KVM_EXIT_IO_OUT) {
                idle(v, hv_le_value((uint8_t *)run + run->io.data_offset, run->io.size));
                continue;
            }
            int handled = hv_vm_handle_io(v->vm, run, e);
            if (handled) {
                if (handled == 2)
                    s->unassigned_io++;
                continue;
            }
            return 0;
        }
        describe_exit(run, e);
        return 0;
    }
}

/* This thread's Linux tid, asked of the kernel once per thread (not per return from Python). */
static int thread_tid(void)
{
    static __thread int tid;
    if (!tid)
        tid = (int)syscall(SYS_gettid);
    return tid;
}

int hv_vcpu_run(struct hv_vcpu *v, struct hv_exit *e)
{
    pthread_mutex_lock(&v->kick_lock);
    v->in_run = 1;
    v->thread = pthread_self();
    int tid = thread_tid();
    if (atomic_load(&v->tid) != tid) {     /* a new thread runs this vCPU: its clock too */
        clockid_t clock;
        int ok = pthread_getcpuclockid(v->thread, &clock) == 0;
        if (ok)
            atomic_store(&v->cpu_clock, (int)clock);
        atomic_store(&v->cpu_clock_set, ok);
        atomic_store(&v->tid, tid);
    }
    pthread_mutex_unlock(&v->kick_lock);

    int r = run_loop(v, e);
    if (r == 0)
        v->stats.python_exits++;

    pthread_mutex_lock(&v->kick_lock);
    v->in_run = 0;
    pthread_mutex_unlock(&v->kick_lock);
    return r;
}

/*
 * The floor for the exit benchmark: KVM_RUN in a bare loop, every port-I/O exit
 * ignored, until the guest writes stop_port. No devices, no counters, no clock.
 */
int hv_bench_raw_loop(struct hv_vcpu *v, uint16_t stop_port, uint64_t *io_exits)
{
    struct kvm_run *run = v->run;
    uint64_t n = 0;
    for (;;) {
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR)
                continue;
            return hv_fail("KVM_RUN");
        }
        if (run->exit_reason != KVM_EXIT_IO)
            return hv_fail_errno("KVM_RUN (raw loop: unexpected exit)", EIO);
        if (run->io.port == stop_port)
            break;
        n++;
    }
    *io_exits = n;
    return 0;
}

/* ---- vCPU state: thin named wrappers, one ioctl each ---- */

HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, regs, struct kvm_regs, KVM_GET_REGS, KVM_SET_REGS)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, sregs, struct kvm_sregs, KVM_GET_SREGS, KVM_SET_SREGS)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, fpu, struct kvm_fpu, KVM_GET_FPU, KVM_SET_FPU)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, xcrs, struct kvm_xcrs, KVM_GET_XCRS, KVM_SET_XCRS)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, lapic, struct kvm_lapic_state, KVM_GET_LAPIC, KVM_SET_LAPIC)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, events, struct kvm_vcpu_events, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, mp_state, struct kvm_mp_state, KVM_GET_MP_STATE, KVM_SET_MP_STATE)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, debugregs, struct kvm_debugregs, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS)
HV_STATE_IOCTLS(vcpu, struct hv_vcpu, fd, msrs, struct kvm_msrs, KVM_GET_MSRS, KVM_SET_MSRS)

int hv_vcpu_get_xsave(struct hv_vcpu *v, void *buf, size_t len)
{
    if (len < sizeof(struct kvm_xsave))
        return hv_fail_errno("KVM_GET_XSAVE", EINVAL);
#ifdef KVM_GET_XSAVE2
    if (len > sizeof(struct kvm_xsave))
        return hv_xioctl(v->fd, KVM_GET_XSAVE2, buf, "KVM_GET_XSAVE2");
#endif
    return hv_xioctl(v->fd, KVM_GET_XSAVE, buf, "KVM_GET_XSAVE");
}

int hv_vcpu_set_xsave(struct hv_vcpu *v, void *buf, size_t len)
{
    if (len < sizeof(struct kvm_xsave))
        return hv_fail_errno("KVM_SET_XSAVE", EINVAL);
    return hv_xioctl(v->fd, KVM_SET_XSAVE, buf, "KVM_SET_XSAVE");
}

int hv_vcpu_set_cpuid(struct hv_vcpu *v, struct kvm_cpuid2 *cpuid)
{
    return hv_xioctl(v->fd, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
}

int hv_vcpu_get_tsc_khz(struct hv_vcpu *v)
{
    return hv_xioctl(v->fd, KVM_GET_TSC_KHZ, NULL, "KVM_GET_TSC_KHZ");
}

int hv_vcpu_translate(struct hv_vcpu *v, struct kvm_translation *tr)
{
    return hv_xioctl(v->fd, KVM_TRANSLATE, tr, "KVM_TRANSLATE");
}

/* KVM_SET_GUEST_DEBUG: control is KVM_GUESTDBG_*; only on a vCPU outside hv_vcpu_run. */
int hv_vcpu_set_guest_debug(struct hv_vcpu *v, uint32_t control, const uint64_t *debugreg)
{
    struct kvm_guest_debug dbg;
    memset(&dbg, 0, sizeof(dbg));
    dbg.control = control;
    for (int i = 0; debugreg && i < 8; i++)
        dbg.arch.debugreg[i] = debugreg[i];
    return hv_xioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg, "KVM_SET_GUEST_DEBUG");
}
