/*
 * internal.h - the core's private structures and helpers (never seen by cffi).
 */
#ifndef HV_INTERNAL_H
#define HV_INTERNAL_H
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include "hvcore.h"
#include "uart16550.h"
#include "i8042.h"
#include "ring.h"

#define HV_MAX_SLOTS 8

struct hv_ram_slot {
    void *host;
    uint64_t gpa, size;
};

struct hv_vm {
    int kvm_fd, vm_fd, run_size;
    int has_pit;                       /* hv_vm_create_pit ran */
    struct hv_ram_slot slots[HV_MAX_SLOTS];
    uint8_t python_ports[65536 / 8];   /* bitmap: ports handled by Python devices */

    pthread_mutex_t uart_lock;         /* guards uart, console ring, irq4_level */
    struct uart16550 uart;
    int irq4_level;
    struct byte_ring console;
    uint8_t console_buf[HV_CONSOLE_RING];
    int console_efd;
    int rx_efd;                        /* eventfd: host input reached the UART (wakes idle vCPUs) */

    pthread_mutex_t i8042_lock;        /* guards kbd, its IRQ levels and counters */
    struct i8042 kbd;
    int irq1_level, irq12_level;
    uint64_t kbd_keys, kbd_dropped;

    pthread_mutex_t vcpus_lock;        /* guards the vcpus list (lazyram.c kicks them) */
    struct hv_vcpu *vcpus;
    struct hv_lazy *lazy;              /* lazily restored RAM (lazyram.c), or NULL */
    atomic_int ram_failed;             /* a restored page failed: no vCPU enters KVM_RUN again */
};

struct hv_vcpu {
    struct hv_vm *vm;
    int fd;
    uint32_t index;
    struct kvm_run *run;
    atomic_int request;
    int kick_efd;                      /* eventfd: a kick, for a vCPU waiting on the idle port */
    pthread_mutex_t kick_lock;         /* guards in_run and thread */
    int in_run;
    pthread_t thread;
    atomic_int tid;
    atomic_int cpu_clock;              /* the CPU-time clock of the thread tid names (clockid_t) */
    atomic_int cpu_clock_set;          /* cpu_clock holds one */
    uint64_t t_last;
    struct hv_vcpu_stats stats;
    struct hv_vcpu *next_in_vm;        /* vm->vcpus, under vm->vcpus_lock */
    int lazy_seen_out;                 /* lazyram.c's, under vm->vcpus_lock */
};

/* Record the failing operation and return -errno. */
int hv_fail(const char *op);
int hv_fail_errno(const char *op, int err);
int hv_xioctl(int fd, unsigned long request, void *arg, const char *op);
uint64_t hv_now_ns(void);

/* A named get/set pair over one ioctl each: hv_<obj>_get_<name> and hv_<obj>_set_<name>. */
#define HV_STATE_IOCTLS(obj, objtype, fd, name, type, GET, SET)                    \
    int hv_##obj##_get_##name(objtype *o, type *s)                             \
    {                                                                          \
        return hv_xioctl(o->fd, GET, s, #GET);                                 \
    }                                                                          \
    int hv_##obj##_set_##name(objtype *o, type *s)                             \
    {                                                                          \
        return hv_xioctl(o->fd, SET, s, #SET);                                 \
    }

/* vm.c: the hot devices, called from the vCPU loop */
int hv_vm_handle_io(struct hv_vm *vm, struct kvm_run *run, struct hv_exit *exit);
int hv_vm_rx_pending(struct hv_vm *vm);
uint64_t hv_le_value(const uint8_t *data, uint8_t size);   /* a little-endian I/O value */

/* lazyram.c: stop serving a lazily restored RAM (before it is unmapped) */
void hv_lazy_stop(struct hv_vm *vm);
#endif
