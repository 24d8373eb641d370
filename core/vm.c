/*
 * vm.c - one VM: in-kernel irqchip (and PIT, for the PC platform), RAM slots, and the hot devices that the
 * vCPU loop serves without Python: COM1 (uart16550.c) with its console ring and
 * eventfd, the debug-exit port, port 0x80, the i8042 (i8042.c: the PS/2 controller and
 * keyboard, on IRQ 1 and 12, with the host's keys), and ports nobody owns.
 */
#include "internal.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define TSS_ADDR          0xfffbd000ull
#define IDENTITY_MAP_ADDR 0xfffbc000ull

int hv_vm_create(int kvm_fd, struct hv_vm **out)
{
    struct hv_vm *vm = calloc(1, sizeof(*vm));
    if (!vm)
        return hv_fail_errno("allocate VM", ENOMEM);
    vm->kvm_fd = kvm_fd;
    vm->console_efd = -1;
    vm->rx_efd = -1;
    vm->vm_fd = -1;
    int r;
    if ((r = hv_kvm_vcpu_mmap_size(kvm_fd)) < 0)
        goto fail;
    vm->run_size = r;
    vm->vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        r = hv_fail("KVM_CREATE_VM");
        goto fail;
    }
    uint64_t idmap = IDENTITY_MAP_ADDR;
    if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
        (r = hv_xioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap, "KVM_SET_IDENTITY_MAP_ADDR")) < 0)
        goto fail;
    if ((r = hv_xioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (void *)TSS_ADDR, "KVM_SET_TSS_ADDR")) < 0)
        goto fail;
    if ((r = hv_xioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, NULL, "KVM_CREATE_IRQCHIP")) < 0)
        goto fail;
    vm->console_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    vm->rx_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (vm->console_efd < 0 || vm->rx_efd < 0) {
        r = hv_fail("eventfd");
        goto fail;
    }
    pthread_mutex_init(&vm->uart_lock, NULL);
    pthread_mutex_init(&vm->i8042_lock, NULL);
    pthread_mutex_init(&vm->vcpus_lock, NULL);
    atomic_init(&vm->ram_failed, 0);
    uart_reset(&vm->uart);
    i8042_reset(&vm->kbd);
    vm->irq1_level = vm->irq12_level = 0;
    ring_init(&vm->console, vm->console_buf, sizeof(vm->console_buf));
    *out = vm;
    return 0;
fail:
    if (vm->console_efd >= 0)
        close(vm->console_efd);
    if (vm->rx_efd >= 0)
        close(vm->rx_efd);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    free(vm);
    return r;
}

/*
 * The in-kernel PIT, made only for a guest of the PC platform (vmm/boot: protocol.PC),
 * not for every VM: besides its kernel thread, KVM's teardown of a PIT costs ~16 ms on
 * KVM-PVM (measured: a VM with irqchip and PIT closes in 16 ms, without the PIT in 0.1),
 * which a tiny guest would pay at every end for a timer it never programs.
 */
int hv_vm_create_pit(struct hv_vm *vm)
{
    if (vm->has_pit)
        return 0;
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    int r = hv_xioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");
    if (r == 0)
        vm->has_pit = 1;
    return r;
}

void hv_vm_destroy(struct hv_vm *vm)
{
    if (!vm)
        return;
    hv_lazy_stop(vm);   /* no fault is served, nor waits, once the RAM is gone */
    for (int i = 0; i < HV_MAX_SLOTS; i++)
        if (vm->slots[i].host)
            munmap(vm->slots[i].host, vm->slots[i].size);
    close(vm->console_efd);
    close(vm->rx_efd);
    close(vm->vm_fd);
    pthread_mutex_destroy(&vm->uart_lock);
    pthread_mutex_destroy(&vm->i8042_lock);
    pthread_mutex_destroy(&vm->vcpus_lock);
    free(vm);
}

/*
 * On KVM-PVM the first memory slot a VM gets costs 6-10 ms (the MMU is set up then), any
 * later one about 0.5 ms, whatever its size; the set-up outlives the slot. A VM warmed
 * here, ahead of need, maps its real RAM at the later price.
 */
#define WARM_SLOT 511
int hv_vm_warm(struct hv_vm *vm)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return hv_fail("mmap warm-up page");
    struct kvm_userspace_memory_region region = {
        .slot = WARM_SLOT, .guest_phys_addr = 0xfffff000ull, .memory_size = 4096,
        .userspace_addr = (uint64_t)(uintptr_t)page,
    };
    int r = hv_xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION (warm-up)");
    if (r == 0) {
        region.memory_size = 0;   /* delete it again */
        r = hv_xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION (warm-up)");
    }
    munmap(page, 4096);
    return r;
}

int hv_vm_fd(struct hv_vm *vm)
{
    return vm->vm_fd;
}

int hv_vm_map_ram(struct hv_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, int fd,
                  uint64_t offset, void **host)
{
    if (slot >= HV_MAX_SLOTS || vm->slots[slot].host || size == 0 || (size & 0xfff) || (gpa & 0xfff))
        return hv_fail_errno("map guest RAM", EINVAL);
    int flags = MAP_PRIVATE | MAP_NORESERVE | (fd < 0 ? MAP_ANONYMOUS : 0);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, fd < 0 ? 0 : (off_t)offset);
    if (p == MAP_FAILED)
        return hv_fail("mmap guest RAM");
    struct kvm_userspace_memory_region region = {
        .slot = slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uint64_t)(uintptr_t)p,
    };
    int r = hv_xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
    if (r < 0) {
        munmap(p, size);
        return r;
    }
    vm->slots[slot] = (struct hv_ram_slot){ .host = p, .gpa = gpa, .size = size };
    *host = p;
    return 0;
}

/* mincore over every slot, a fixed stack vector at a time: no allocation. */
uint64_t hv_vm_resident_bytes(struct hv_vm *vm)
{
    const size_t page = 4096, chunk_pages = 4096;
    unsigned char vec[4096];
    uint64_t resident = 0;
    for (int i = 0; i < HV_MAX_SLOTS; i++) {
        struct hv_ram_slot *s = &vm->slots[i];
        for (uint64_t off = 0; s->host && off < s->size; off += chunk_pages * page) {
            size_t len = s->size - off < chunk_pages * page ? s->size - off : chunk_pages * page;
            if (mincore((uint8_t *)s->host + off, len, vec) < 0)
                continue;
            for (size_t p = 0; p < (len + page - 1) / page; p++)
                resident += (vec[p] & 1) ? page : 0;
        }
    }
    return resident;
}

int hv_vm_claim_ports(struct hv_vm *vm, uint16_t first, uint32_t count)
{
    if ((uint32_t)first + count > 65536)
        return hv_fail_errno("claim I/O ports", EINVAL);
    for (uint32_t p = first; p < (uint32_t)first + count; p++)
        vm->python_ports[p / 8] |= (uint8_t)(1u << (p % 8));
    return 0;
}

int hv_vm_irq_line(struct hv_vm *vm, uint32_t irq, uint32_t level)
{
    struct kvm_irq_level l = { .irq = irq, .level = level };
    return hv_xioctl(vm->vm_fd, KVM_IRQ_LINE, &l, "KVM_IRQ_LINE");
}

HV_STATE_IOCTLS(vm, struct hv_vm, vm_fd, irqchip, struct kvm_irqchip, KVM_GET_IRQCHIP, KVM_SET_IRQCHIP)
HV_STATE_IOCTLS(vm, struct hv_vm, vm_fd, pit2, struct kvm_pit_state2, KVM_GET_PIT2, KVM_SET_PIT2)
HV_STATE_IOCTLS(vm, struct hv_vm, vm_fd, clock, struct kvm_clock_data, KVM_GET_CLOCK, KVM_SET_CLOCK)

int hv_vm_ioeventfd(struct hv_vm *vm, struct kvm_ioeventfd *ioeventfd)
{
    return hv_xioctl(vm->vm_fd, KVM_IOEVENTFD, ioeventfd, "KVM_IOEVENTFD");
}

int hv_vm_irqfd(struct hv_vm *vm, struct kvm_irqfd *irqfd)
{
    return hv_xioctl(vm->vm_fd, KVM_IRQFD, irqfd, "KVM_IRQFD");
}

/* ---- COM1 ---- */

/* Called with uart_lock held: follow the UART's interrupt output on IRQ 4. */
static void uart_update_irq(struct hv_vm *vm)
{
    int level = uart_irq_pending(&vm->uart);
    if (level != vm->irq4_level) {
        struct kvm_irq_level l = { .irq = HV_COM1_IRQ, .level = (uint32_t)level };
        if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) == 0)
            vm->irq4_level = level;
    }
}

static void console_put(struct hv_vm *vm, uint8_t byte)
{
    int was_empty = vm->console.count == 0;
    ring_put(&vm->console, byte);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(vm->console_efd, &one, sizeof(one));
        (void)w;   /* EAGAIN only when the counter is saturated: already readable */
    }
}

static void uart_io(struct hv_vm *vm, unsigned offset, int is_out, uint8_t *data, uint32_t count)
{
    pthread_mutex_lock(&vm->uart_lock);
    for (uint32_t i = 0; i < count; i++) {
        if (is_out) {
            uint8_t tx;
            if (uart_write(&vm->uart, offset, data[i], &tx) == UART_WRITE_TX)
                console_put(vm, tx);
        } else {
            data[i] = uart_read(&vm->uart, offset);
        }
    }
    uart_update_irq(vm);
    pthread_mutex_unlock(&vm->uart_lock);
}

int hv_console_fd(struct hv_vm *vm)
{
    return vm->console_efd;
}

size_t hv_console_read(struct hv_vm *vm, uint8_t *buf, size_t len)
{
    uint64_t counter;
    pthread_mutex_lock(&vm->uart_lock);
    ssize_t r = read(vm->console_efd, &counter, sizeof(counter));
    (void)r;   /* EAGAIN when not signalled: fine, we drain the ring anyway */
    size_t n = ring_get(&vm->console, buf, len);
    if (vm->console.count) {   /* more than the caller took: stay readable */
        uint64_t one = 1;
        ssize_t w = write(vm->console_efd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_unlock(&vm->uart_lock);
    return n;
}

size_t hv_uart_push_rx(struct hv_vm *vm, const uint8_t *buf, size_t len)
{
    pthread_mutex_lock(&vm->uart_lock);
    size_t n = uart_rx_push(&vm->uart, buf, len);
    uart_update_irq(vm);
    pthread_mutex_unlock(&vm->uart_lock);
    if (n)
        hv_vm_wake_idle(vm);
    return n;
}

void hv_vm_wake_idle(struct hv_vm *vm)
{
    uint64_t one = 1;
    ssize_t w = write(vm->rx_efd, &one, sizeof(one));
    (void)w;   /* EAGAIN only when the counter is saturated: already readable */
}

int hv_vm_rx_pending(struct hv_vm *vm)
{
    pthread_mutex_lock(&vm->uart_lock);
    int pending = vm->uart.rx_count > 0;
    pthread_mutex_unlock(&vm->uart_lock);
    return pending;
}

void hv_uart_get_stats(struct hv_vm *vm, struct hv_uart_stats *out)
{
    pthread_mutex_lock(&vm->uart_lock);
    out->tx_bytes = vm->uart.tx_bytes;
    out->rx_bytes = vm->uart.rx_bytes;
    out->rx_overruns = vm->uart.rx_overruns;
    out->console_dropped = vm->console.dropped;
    out->rx_pending = vm->uart.rx_count;
    pthread_mutex_unlock(&vm->uart_lock);
}

size_t hv_uart_state_size(void)
{
    return sizeof(struct uart16550);
}

void hv_uart_save(struct hv_vm *vm, void *out)
{
    pthread_mutex_lock(&vm->uart_lock);
    memcpy(out, &vm->uart, sizeof(vm->uart));
    pthread_mutex_unlock(&vm->uart_lock);
}

int hv_uart_restore(struct hv_vm *vm, const void *in, size_t len)
{
    struct uart16550 u;
    if (len != sizeof(u))
        return hv_fail_errno("restore UART state", EINVAL);
    memcpy(&u, in, sizeof(u));
    if (!uart_state_valid(&u))
        return hv_fail_errno("restore UART state", EINVAL);
    pthread_mutex_lock(&vm->uart_lock);
    vm->uart = u;
    vm->irq4_level = -1;        /* force the line to follow the restored state */
    uart_update_irq(vm);
    pthread_mutex_unlock(&vm->uart_lock);
    return 0;
}

/* ---- the i8042 ---- */

_Static_assert(HV_KEY_E0 == I8042_KEY_E0 && HV_KEY_BREAK == I8042_KEY_BREAK &&
               HV_KEY_PAUSE == I8042_KEY_PAUSE, "hvcore.h and i8042.h agree on host keys");

/* Called with i8042_lock held: one ISA line follows one output of the controller. After
   the guest took a byte and another is already there, pulse: the PIC sees a new edge. */
static void follow_line(struct hv_vm *vm, uint32_t irq, int *current, int level, int pulse)
{
    struct kvm_irq_level l = { .irq = irq, .level = 0 };
    if (pulse && level && *current == 1 && ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) == 0)
        *current = 0;
    if (level != *current) {
        l.level = (uint32_t)level;
        if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) == 0)
            *current = level;
    }
}

static void kbd_update_irq(struct hv_vm *vm, int pulse)
{
    unsigned lines = i8042_irq_lines(&vm->kbd);
    follow_line(vm, HV_KBD_IRQ, &vm->irq1_level, (lines & I8042_IRQ_KBD) != 0, pulse);
    follow_line(vm, HV_AUX_IRQ, &vm->irq12_level, (lines & I8042_IRQ_AUX) != 0, pulse);
}

static void i8042_io(struct hv_vm *vm, uint16_t port, int is_out, uint8_t *data, uint32_t count, int *reset)
{
    pthread_mutex_lock(&vm->i8042_lock);
    for (uint32_t i = 0; i < count; i++) {
        if (is_out) {
            *reset |= i8042_write(&vm->kbd, port, data[i]) == I8042_RESET;
            kbd_update_irq(vm, 0);
        } else {
            data[i] = i8042_read(&vm->kbd, port);
            kbd_update_irq(vm, port == HV_PORT_I8042_DATA);
        }
    }
    pthread_mutex_unlock(&vm->i8042_lock);
}

size_t hv_i8042_state_size(void)
{
    return sizeof(struct i8042);
}

void hv_i8042_save(struct hv_vm *vm, void *out)
{
    pthread_mutex_lock(&vm->i8042_lock);
    memcpy(out, &vm->kbd, sizeof(vm->kbd));
    pthread_mutex_unlock(&vm->i8042_lock);
}

int hv_i8042_restore(struct hv_vm *vm, const void *in, size_t len)
{
    struct i8042 k;
    if (len != sizeof(k))
        return hv_fail_errno("restore i8042 state (wrong size: a snapshot of another version?)", EINVAL);
    memcpy(&k, in, sizeof(k));
    if (!i8042_state_valid(&k))
        return hv_fail_errno("restore i8042 state (invalid registers)", EINVAL);
    pthread_mutex_lock(&vm->i8042_lock);
    vm->kbd = k;
    vm->irq1_level = vm->irq12_level = -1;   /* force the lines to follow the restored state */
    kbd_update_irq(vm, 0);
    pthread_mutex_unlock(&vm->i8042_lock);
    return 0;
}

size_t hv_i8042_push_keys(struct hv_vm *vm, const uint16_t *keys, size_t n)
{
    size_t dropped = 0;
    pthread_mutex_lock(&vm->i8042_lock);
    size_t taken = i8042_push_keys(&vm->kbd, keys, n, &dropped);
    vm->kbd_keys += taken;
    vm->kbd_dropped += dropped;
    kbd_update_irq(vm, 0);
    pthread_mutex_unlock(&vm->i8042_lock);
    if (taken > dropped)
        hv_vm_wake_idle(vm);
    return taken;
}

void hv_i8042_get_stats(struct hv_vm *vm, struct hv_kbd_stats *out)
{
    pthread_mutex_lock(&vm->i8042_lock);
    out->keys = vm->kbd_keys;
    out->dropped = vm->kbd_dropped;
    out->leds = vm->kbd.kbd_leds;
    out->scancode_set = vm->kbd.kbd_set;
    out->scanning = vm->kbd.kbd_scanning;
    out->translating = (vm->kbd.ram[0] & 0x40) != 0;
    out->pad = 0;
    pthread_mutex_unlock(&vm->i8042_lock);
}

/* ---- the hot port-I/O dispatch ---- */

uint64_t hv_le_value(const uint8_t *data, uint8_t size)
{
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--)
        v = (v << 8) | data[i];
    return v;
}

/*
 * Serve one KVM_EXIT_IO if a hot device owns the port. Returns 1 when handled (the
 * vCPU goes straight back into KVM_RUN), 2 when handled as a port nobody owns, and
 * 0 when *exit was filled for Python.
 */
int hv_vm_handle_io(struct hv_vm *vm, struct kvm_run *run, struct hv_exit *exit)
{
    uint16_t port = run->io.port;
    uint8_t size = run->io.size;
    uint32_t count = run->io.count;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    int is_out = run->io.direction == KVM_EXIT_IO_OUT;

    if (vm->python_ports[port / 8] & (1u << (port % 8))) {
        exit->reason = HV_EXIT_IO;
        exit->port = port;
        exit->size = size;
        exit->direction = is_out ? HV_IO_OUT : HV_IO_IN;
        exit->count = count;
        exit->data = data;
        exit->value = is_out && count == 1 ? hv_le_value(data, size) : 0;   /* the word an `out` wrote */
        return 0;
    }
    if (port >= HV_PORT_COM1 && port < HV_PORT_COM1 + 8 && size == 1) {
        uart_io(vm, port - HV_PORT_COM1, is_out, data, count);
        return 1;
    }
    if (port == HV_PORT_DEBUG_EXIT && is_out) {
        exit->reason = HV_EXIT_DEBUG_EXIT;
        exit->value = hv_le_value(data, size);
        return 0;
    }
    if ((port == HV_PORT_I8042_DATA || port == HV_PORT_I8042_CMD) && size == 1) {
        int reset = 0;
        i8042_io(vm, port, is_out, data, count, &reset);
        if (reset) {
            exit->reason = HV_EXIT_RESET;
            return 0;
        }
        return 1;
    }
    /* Port 0x80 and every port nobody owns: writes vanish, reads float high. */
    if (!is_out)
        memset(data, 0xff, (size_t)size * count);
    return port == HV_PORT_POST ? 1 : 2;
}
