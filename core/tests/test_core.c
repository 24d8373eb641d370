/*
 * test_core.c - the C core's own tests, built with AddressSanitizer and UBSan by
 * core/tests/Makefile (and CI): the UART, ring and i8042 state machines, then the
 * vCPU loop on the real /dev/kvm (hot UART exits, debug exit, kick, Python ports,
 * unassigned ports, counters, guest debugging). Prints "N passed, N failed".
 */
#include "../internal.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
        }                                                                      \
    } while (0)

static void test_uart(void)
{
    struct uart16550 u;
    uint8_t tx = 0;
    uart_reset(&u);
    CHECK(uart_read(&u, UART_LSR) == 0x60);
    CHECK(uart_read(&u, UART_IIR_FCR) == 0x01);          /* no interrupt pending */
    CHECK(uart_write(&u, UART_RBR_THR, 'A', &tx) == UART_WRITE_TX && tx == 'A');
    CHECK(!uart_irq_pending(&u));                          /* IER is 0 */
    uart_write(&u, UART_IER, 0x02, &tx);                   /* enable THR empty */
    CHECK(uart_irq_pending(&u));
    CHECK((uart_read(&u, UART_IIR_FCR) & 0x0f) == 0x02);   /* reading IIR acknowledges */
    CHECK(!uart_irq_pending(&u));
    uint8_t in[70];
    for (int i = 0; i < 70; i++)
        in[i] = (uint8_t)i;
    CHECK(uart_rx_push(&u, in, 70) == UART_FIFO_SIZE);     /* the FIFO takes 64 */
    CHECK(uart_read(&u, UART_LSR) & 0x01);
    uart_write(&u, UART_IER, 0x01, &tx);
    CHECK(uart_irq_pending(&u) && (uart_read(&u, UART_IIR_FCR) & 0x0f) == 0x04);
    for (int i = 0; i < UART_FIFO_SIZE; i++)
        CHECK(uart_read(&u, UART_RBR_THR) == i);
    CHECK(!(uart_read(&u, UART_LSR) & 0x01) && !uart_irq_pending(&u));
    uart_write(&u, UART_MCR, 0x10, &tx);                   /* loopback */
    CHECK(uart_write(&u, UART_RBR_THR, 'z', &tx) == 0);
    CHECK(uart_read(&u, UART_RBR_THR) == 'z');
    uart_write(&u, UART_LCR, 0x80, &tx);                   /* DLAB */
    uart_write(&u, UART_RBR_THR, 0x01, &tx);
    uart_write(&u, UART_IER, 0x02, &tx);
    CHECK(uart_read(&u, UART_RBR_THR) == 0x01 && uart_read(&u, UART_IER) == 0x02);
    CHECK(uart_state_valid(&u));
    u.rx_count = 200;
    CHECK(!uart_state_valid(&u));
}

static void test_ring(void)
{
    uint8_t storage[8], out[16];
    struct byte_ring r;
    ring_init(&r, storage, sizeof(storage));
    for (int i = 0; i < 11; i++)
        ring_put(&r, (uint8_t)i);
    CHECK(r.count == 8 && r.dropped == 3);
    CHECK(ring_get(&r, out, 5) == 5 && out[0] == 3 && out[4] == 7);
    ring_put(&r, 11);
    CHECK(ring_get(&r, out, 16) == 4 && out[0] == 8 && out[3] == 11);
    CHECK(ring_get(&r, out, 16) == 0);
}

/* Read every byte the controller holds for the guest, up to max; returns how many. */
static int drain(struct i8042 *k, uint8_t *out, int max)
{
    int n = 0;
    while ((i8042_read(k, 0x64) & 1) && n < max)
        out[n++] = i8042_read(k, 0x60);
    return n;
}

static int replies(struct i8042 *k, const uint8_t *want, int n)
{
    uint8_t got[64];
    int m = drain(k, got, 64);
    if (m != n) {
        fprintf(stderr, "  got %d bytes, want %d:", m, n);
        for (int i = 0; i < m; i++)
            fprintf(stderr, " %02x", got[i]);
        fprintf(stderr, "\n");
        return 0;
    }
    return memcmp(got, want, (size_t)n) == 0;
}
#define REPLIES(k, ...) replies((k), (const uint8_t[]){ __VA_ARGS__ }, \
                                (int)sizeof((const uint8_t[]){ __VA_ARGS__ }))

static void test_i8042(void)
{
    struct i8042 k;
    size_t dropped = 0;
    i8042_reset(&k);
    CHECK(i8042_state_valid(&k));
    CHECK(i8042_write(&k, 0x64, 0x20) == 0);
    CHECK((i8042_read(&k, 0x64) & 1) && i8042_read(&k, 0x60) == 0x45);
    CHECK(!(i8042_read(&k, 0x64) & 1));
    CHECK(i8042_write(&k, 0x64, 0xfe) == I8042_RESET);
    CHECK(i8042_write(&k, 0x64, 0xff) == 0);                /* odd pulse: no reset line */
    CHECK(i8042_write(&k, 0x64, 0xd1) == 0 && i8042_write(&k, 0x60, 0x03) == 0);
    CHECK(i8042_write(&k, 0x64, 0xd1) == 0 && i8042_write(&k, 0x60, 0x02) == I8042_RESET);
    i8042_reset(&k);
    CHECK(i8042_read(&k, 0x64) == 0x14);                    /* SYS, not locked, empty */

    /* Linux's i8042 probe: self-test, CTR read and write back, interface tests, AUX loop */
    i8042_write(&k, 0x64, 0xaa);
    CHECK(REPLIES(&k, 0x55));
    CHECK(i8042_write(&k, 0x64, 0x60) == 0 && (i8042_read(&k, 0x64) & 0x08));
    i8042_write(&k, 0x60, 0x74);                            /* interrupts off, both ports off */
    CHECK(!(i8042_read(&k, 0x64) & 0x08));
    i8042_write(&k, 0x64, 0x20);
    CHECK(REPLIES(&k, 0x74));
    i8042_write(&k, 0x64, 0xab);
    CHECK(REPLIES(&k, 0x00));
    i8042_write(&k, 0x64, 0xd3);
    i8042_write(&k, 0x60, 0x5a);
    CHECK((i8042_read(&k, 0x64) & 0x21) == 0x21 && i8042_read(&k, 0x60) == 0x5a);
    CHECK(i8042_irq_lines(&k) == 0);
    i8042_write(&k, 0x64, 0xa8);
    i8042_write(&k, 0x64, 0x20);
    CHECK(REPLIES(&k, 0x54));                               /* AUX enabled: bit 5 clear */
    i8042_write(&k, 0x64, 0xd4);                            /* to the mouse: nobody there */
    i8042_write(&k, 0x60, 0xf2);
    CHECK((i8042_read(&k, 0x64) & 0x61) == 0x61 && i8042_read(&k, 0x60) == 0xfe);
    CHECK(!(i8042_read(&k, 0x64) & 0x40));
    i8042_write(&k, 0x64, 0x60);
    i8042_write(&k, 0x60, 0x47);                            /* IRQ 1 + IRQ 12, translate */
    i8042_write(&k, 0x64, 0xd3);
    i8042_write(&k, 0x60, 0xa5);
    CHECK(i8042_irq_lines(&k) == I8042_IRQ_AUX);
    CHECK(REPLIES(&k, 0xa5) && i8042_irq_lines(&k) == 0);

    /* the keyboard, translated (CTR bit 6): reset, identify, scancode set, LEDs, echo */
    i8042_write(&k, 0x60, 0xff);
    CHECK(i8042_irq_lines(&k) == I8042_IRQ_KBD);
    CHECK(REPLIES(&k, 0xfa, 0xaa));
    i8042_write(&k, 0x60, 0xf2);
    CHECK(REPLIES(&k, 0xfa, 0xab, 0x41));                   /* 0x83 reads 0x41 translated */
    i8042_write(&k, 0x60, 0xf0);
    i8042_write(&k, 0x60, 0x00);
    CHECK(REPLIES(&k, 0xfa, 0xfa, 0x41));                   /* set 2, translated as well */
    i8042_write(&k, 0x60, 0xed);
    i8042_write(&k, 0x60, 0x07);
    CHECK(REPLIES(&k, 0xfa, 0xfa) && k.kbd_leds == 7);
    i8042_write(&k, 0x60, 0xee);
    CHECK(REPLIES(&k, 0xee));
    i8042_write(&k, 0x60, 0x12);                            /* not a command */
    CHECK(REPLIES(&k, 0xfe));
    i8042_write(&k, 0x60, 0xf0);
    i8042_write(&k, 0x60, 0x03);                            /* set 3: refused */
    CHECK(REPLIES(&k, 0xfa, 0xfe) && k.kbd_set == 2);

    /* keys: 'a', then up arrow, make and break; set 2 translated to set 1 */
    uint16_t keys[] = { 0x1c, 0x1c | I8042_KEY_BREAK, 0x75 | I8042_KEY_E0,
                        0x75 | I8042_KEY_E0 | I8042_KEY_BREAK };
    CHECK(i8042_push_keys(&k, keys, 4, &dropped) == 4 && dropped == 0);
    CHECK(REPLIES(&k, 0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8));
    i8042_write(&k, 0x64, 0x60);
    i8042_write(&k, 0x60, 0x05);                            /* no translation: raw set 2 */
    CHECK(i8042_push_keys(&k, keys, 4, &dropped) == 4);
    CHECK(REPLIES(&k, 0x1c, 0xf0, 0x1c, 0xe0, 0x75, 0xe0, 0xf0, 0x75));
    i8042_write(&k, 0x60, 0xf2);
    CHECK(REPLIES(&k, 0xfa, 0xab, 0x83));
    i8042_write(&k, 0x60, 0xf0);                            /* the keyboard in set 1 */
    i8042_write(&k, 0x60, 0x01);
    CHECK(REPLIES(&k, 0xfa, 0xfa));
    CHECK(i8042_push_keys(&k, keys, 4, &dropped) == 4);
    CHECK(REPLIES(&k, 0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8));
    uint16_t pause = I8042_KEY_PAUSE;
    CHECK(i8042_push_keys(&k, &pause, 1, &dropped) == 1);
    CHECK(REPLIES(&k, 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5));
    i8042_write(&k, 0x60, 0xf6);                            /* defaults: set 2 again */
    CHECK(REPLIES(&k, 0xfa) && k.kbd_set == 2);
    CHECK(i8042_push_keys(&k, &pause, 1, &dropped) == 1);
    CHECK(REPLIES(&k, 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77));

    /* the keyboard's queue is bounded and takes whole keys only */
    uint16_t many[100];
    for (int i = 0; i < 100; i++)
        many[i] = 0x75 | I8042_KEY_E0 | I8042_KEY_BREAK;    /* 3 bytes each in set 2 */
    i8042_write(&k, 0x64, 0xad);                            /* keyboard port off: keys wait */
    CHECK(i8042_push_keys(&k, many, 100, &dropped) == I8042_KEY_QUEUE / 3);
    CHECK(!(i8042_read(&k, 0x64) & 1));
    i8042_write(&k, 0x64, 0xae);
    uint8_t got[256];
    CHECK(drain(&k, got, 256) == (I8042_KEY_QUEUE / 3) * 3);
    /* a keyboard that does not scan takes keys and loses them */
    i8042_write(&k, 0x60, 0xf5);
    CHECK(REPLIES(&k, 0xfa));
    dropped = 0;
    CHECK(i8042_push_keys(&k, keys, 4, &dropped) == 4 && dropped == 4);
    CHECK(!(i8042_read(&k, 0x64) & 1));
    uint16_t bogus[] = { 0x00, 0xff, 0x7c00 };
    i8042_write(&k, 0x60, 0xf4);
    CHECK(REPLIES(&k, 0xfa));
    dropped = 0;
    CHECK(i8042_push_keys(&k, bogus, 3, &dropped) == 3 && dropped == 3);

    /* replies a guest never reads stay bounded */
    for (int i = 0; i < 1000; i++) {
        i8042_write(&k, 0x64, 0x20);
        i8042_write(&k, 0x60, 0xee);
    }
    CHECK(drain(&k, got, 256) <= 1 + I8042_CTL_QUEUE + I8042_REPLY_QUEUE);

    /* a guest writing garbage to both ports never breaks the state machine */
    uint32_t x = 12345;
    int valid = 1;
    for (int i = 0; i < 200000; i++) {
        x = x * 1103515245u + 12345u;
        uint8_t v = (uint8_t)(x >> 16);
        uint16_t port = (x >> 30) & 1 ? 0x64 : 0x60;
        if ((x >> 29) & 1)
            (void)i8042_read(&k, port);
        else
            (void)i8042_write(&k, port, v);
        if ((i & 1023) == 0) {
            uint16_t key = (uint16_t)(x >> 8);
            i8042_push_keys(&k, &key, 1, &dropped);
        }
        valid &= i8042_state_valid(&k);
    }
    CHECK(valid);

    /* restore checks what a live write could never produce */
    struct i8042 bad;
    i8042_reset(&k);
    bad = k; bad.version = 1;               CHECK(!i8042_state_valid(&bad));
    bad = k; bad.key_count = 65;            CHECK(!i8042_state_valid(&bad));
    bad = k; bad.key_head = 64;             CHECK(!i8042_state_valid(&bad));
    bad = k; bad.kbd_set = 3;               CHECK(!i8042_state_valid(&bad));
    bad = k; bad.pending = 0x99;            CHECK(!i8042_state_valid(&bad));
    bad = k; bad.kbd_pending = 0xf4;        CHECK(!i8042_state_valid(&bad));
    bad = k; bad.obf = 2;                   CHECK(!i8042_state_valid(&bad));
    bad = k; bad.ctl_aux[3] = 7;            CHECK(!i8042_state_valid(&bad));
    CHECK(i8042_translate(0x1c) == 0x1e && i8042_translate(0x83) == 0x41 && i8042_translate(0xfa) == 0xfa);
}

/* ---- the vCPU loop on real KVM ---- */

static const uint64_t gdt[] = { 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull };

/* Guest code (CPL 0, long mode):
 *   mov $0x3f8,%dx; mov $'h',%al; out %al,(%dx); mov $'i',%al; out %al,(%dx)
 *   mov $0x3fd,%dx; in (%dx),%al; mov %al,%bl          ; LSR into bl
 *   mov $0x123,%dx; in (%dx),%al; mov %al,%cl          ; unassigned port into cl
 *   mov $0x524,%dx; mov $7,%al; out %al,(%dx)          ; Python-claimed port
 *   mov $42,%eax; out %eax,$0xf4                       ; debug exit 42
 *   1: out %al,$0x80; jmp 1b                           ; then spin on port 0x80 (for the kick) */
static const uint8_t code[] = {
    0x66, 0xba, 0xf8, 0x03, 0xb0, 'h', 0xee, 0xb0, 'i', 0xee,
    0x66, 0xba, 0xfd, 0x03, 0xec, 0x88, 0xc3,
    0x66, 0xba, 0x23, 0x01, 0xec, 0x88, 0xc1,
    0x66, 0xba, 0x24, 0x05, 0xb0, 0x07, 0xee,
    0xb8, 42, 0, 0, 0, 0xe7, 0xf4,
    0xe6, 0x80, 0xeb, 0xfc,
};

struct kick_arg {
    struct hv_vcpu *v;
};

static void *kicker(void *p)
{
    struct kick_arg *a = p;
    usleep(20000);
    hv_vcpu_kick(a->v);
    return NULL;
}

static void setup_long_mode(struct hv_vcpu *v, uint8_t *mem)
{
    uint64_t *pml4 = (uint64_t *)(mem + 0x10000), *pdpt = (uint64_t *)(mem + 0x11000),
             *pd = (uint64_t *)(mem + 0x12000);
    pml4[0] = 0x11000 | 7;
    pdpt[0] = 0x12000 | 7;
    for (int i = 0; i < 512; i++)
        pd[i] = ((uint64_t)i << 21) | 0x87;
    memcpy(mem + 0x1000, gdt, sizeof(gdt));
    memcpy(mem + 0x100000, code, sizeof(code));
    struct kvm_sregs s;
    CHECK(hv_vcpu_get_sregs(v, &s) == 0);
    s.gdt.base = 0x1000;
    s.gdt.limit = sizeof(gdt) - 1;
    struct kvm_segment cs = { .base = 0, .limit = 0xffffffff, .selector = 8, .type = 11, .present = 1,
                              .s = 1, .l = 1, .g = 1 };
    struct kvm_segment ds = { .base = 0, .limit = 0xffffffff, .selector = 16, .type = 3, .present = 1,
                              .s = 1, .db = 1, .g = 1 };
    s.cs = cs;
    s.ds = s.es = s.fs = s.gs = s.ss = ds;
    s.cr3 = 0x10000;
    s.cr4 = 0x20;
    s.cr0 = 0x80050033;
    s.efer = 0xd00;
    CHECK(hv_vcpu_set_sregs(v, &s) == 0);
    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    r.rip = 0x100000;
    r.rsp = 0x80000;
    r.rflags = 2;
    CHECK(hv_vcpu_set_regs(v, &r) == 0);
}

/* KVM_SET_GUEST_DEBUG from the spin loop at 0x100026 (out; jmp): a single step and a
 * hardware execution breakpoint each come back as HV_EXIT_DEBUG; a failure names
 * the ioctl. */
static void test_guest_debug(struct hv_vcpu *v)
{
    struct hv_exit e;
    uint64_t dr[8] = { 0 };
    memset(&e, 0, sizeof(e));
    CHECK(hv_vcpu_set_guest_debug(v, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP, NULL) == 0);
    CHECK(hv_vcpu_run(v, &e) == 0);
    CHECK(e.reason == HV_EXIT_DEBUG && e.info[0] == 1 && (e.info[2] & 0x4000));
    CHECK(e.info[1] == 0x100026 || e.info[1] == 0x100028);
    dr[0] = 0x100028;
    dr[7] = 0x1;                                     /* L0: execution breakpoint on DR0 */
    CHECK(hv_vcpu_set_guest_debug(v, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP, dr) == 0);
    CHECK(hv_vcpu_run(v, &e) == 0);
    CHECK(e.reason == HV_EXIT_DEBUG && e.info[0] == 1 && e.info[1] == 0x100028 && (e.info[2] & 1));
    struct hv_vcpu closed = *v;
    closed.fd = -1;
    CHECK(hv_vcpu_set_guest_debug(&closed, KVM_GUESTDBG_ENABLE, NULL) == -EBADF);
    CHECK(strcmp(hv_last_op(), "KVM_SET_GUEST_DEBUG") == 0);
    CHECK(hv_vcpu_set_guest_debug(v, 0, NULL) == 0);
}

/* hv_vm_save_ram: non-zero pages only, as sorted runs, at their offsets; hints honoured. */
static void test_save_ram(struct hv_vm *vm, uint8_t *mem)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    int fd = fileno(f);
    memset(mem + 0x800000, 0xab, 3 * 4096);          /* pages 0x800..0x802: one run */
    mem[0x900000 + 17] = 1;                          /* page 0x900 */
    uint64_t runs[2 * 64], pages = 0;
    int n = hv_vm_save_ram(vm, 0, fd, 4096, NULL, 0, runs, 64, &pages);
    CHECK(n > 0);
    int found_run = 0, found_page = 0, sorted = 1;
    for (int i = 0; i < n; i++) {
        found_run |= runs[2 * i] == 0x800 && runs[2 * i + 1] == 3;
        found_page |= runs[2 * i] == 0x900 && runs[2 * i + 1] == 1;
        if (i && runs[2 * i] <= runs[2 * i - 2] + runs[2 * i - 1] - 1)
            sorted = 0;
    }
    CHECK(found_run && found_page && sorted);
    uint8_t byte = 0;
    CHECK(pread(fd, &byte, 1, 4096 + 0x900000 + 17) == 1 && byte == 1);
    CHECK(hv_vm_save_ram(vm, 0, fd, 4096, NULL, 0, runs, 1, &pages) == -E2BIG);  /* room, not disk */
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);                          /* a full disk */
    CHECK(full >= 0);
    if (full >= 0) {
        CHECK(hv_vm_save_ram(vm, 0, full, 4096, NULL, 0, runs, 64, &pages) == -ENOSPC);
        CHECK(strcmp(hv_last_op(), "write snapshot RAM") == 0);
        close(full);
    }
    CHECK(hv_vm_save_ram(vm, 0, fd, 100, NULL, 0, runs, 64, &pages) < 0);      /* unaligned */
    CHECK(hv_vm_save_ram(vm, 5, fd, 4096, NULL, 0, runs, 64, &pages) < 0);     /* no such slot */
    mem[0x900000 + 17] = 0;                          /* zero again: no longer saved */
    uint64_t hint[2] = { 0xa00, 4 };                 /* hinted zero pages stay holes too */
    int m = hv_vm_save_ram(vm, 0, fd, 4096, hint, 1, runs, 64, &pages);
    CHECK(m == n - 1);
    fclose(f);
}

static int test_vcpu_loop(void)
{
    int kvm = hv_kvm_open("/dev/kvm");
    if (kvm < 0)
        return -1;
    char missing[128];
    CHECK(hv_kvm_check(kvm, missing, sizeof(missing)) == 0);
    struct hv_vm *vm;
    CHECK(hv_vm_create(kvm, &vm) == 0);
    void *host;
    CHECK(hv_vm_map_ram(vm, 0, 0, 16 << 20, -1, 0, &host) == 0);
    CHECK(hv_vm_map_ram(vm, 0, 0, 16 << 20, -1, 0, &host) < 0);   /* slot taken */
    CHECK(strcmp(hv_last_op(), "map guest RAM") == 0);
    CHECK(hv_vm_claim_ports(vm, 0x524, 4) == 0);
    CHECK(hv_vm_claim_ports(vm, 0xfffe, 4) < 0);
    struct hv_vcpu *v;
    CHECK(hv_vcpu_create(vm, 0, &v) == 0);
    struct {
        struct kvm_cpuid2 c;
        struct kvm_cpuid_entry2 e[256];
    } cpuid = { .c.nent = 256 };
    CHECK(hv_kvm_get_supported_cpuid(kvm, &cpuid.c) == 0);
    CHECK(hv_vcpu_set_cpuid(v, &cpuid.c) == 0);
    setup_long_mode(v, host);

    struct hv_exit e;
    memset(&e, 0, sizeof(e));
    CHECK(hv_vcpu_run(v, &e) == 0);
    CHECK(e.reason == HV_EXIT_IO && e.port == 0x524 && e.direction == HV_IO_OUT && e.data[0] == 7);
    CHECK(hv_vcpu_run(v, &e) == 0);
    CHECK(e.reason == HV_EXIT_DEBUG_EXIT && e.value == 42);

    struct pollfd pfd = { .fd = hv_console_fd(vm), .events = POLLIN };
    CHECK(poll(&pfd, 1, 0) == 1);
    uint8_t buf[16];
    CHECK(hv_console_read(vm, buf, sizeof(buf)) == 2 && buf[0] == 'h' && buf[1] == 'i');
    CHECK(poll(&pfd, 1, 0) == 0);
    struct kvm_regs r;
    CHECK(hv_vcpu_get_regs(v, &r) == 0);
    CHECK((r.rbx & 0xff) == 0x60 && (r.rcx & 0xff) == 0xff);

    struct hv_vcpu_stats *s = hv_vcpu_stats(v);
    CHECK(s->exits[KVM_EXIT_IO] == 6 && s->unassigned_io == 1 && s->python_exits == 2);

    /* now it spins on port 0x80: a kick from another thread must bring it back */
    pthread_t t;
    struct kick_arg a = { v };
    pthread_create(&t, NULL, kicker, &a);
    CHECK(hv_vcpu_run(v, &e) == 0);
    CHECK(e.reason == HV_EXIT_REQUEST);
    pthread_join(t, NULL);
    uint64_t port80 = 0;
    for (int i = 0; i < HV_PORT_SLOTS; i++)
        if (s->ports[i].used && s->ports[i].port == 0x80)
            port80 = s->ports[i].count;
    CHECK(port80 > 0);
    CHECK(hv_vcpu_run(v, &e) == 0 && e.reason == HV_EXIT_REQUEST);   /* until cleared */
    hv_vcpu_clear_request(v);
    CHECK(hv_vcpu_thread_id(v) > 0);

    uint8_t saved[256];
    CHECK(hv_uart_state_size() <= sizeof(saved));
    hv_uart_save(vm, saved);
    CHECK(hv_uart_restore(vm, saved, hv_uart_state_size()) == 0);
    CHECK(hv_uart_restore(vm, saved, 3) < 0);
    CHECK(hv_i8042_state_size() <= sizeof(saved));
    hv_i8042_save(vm, saved);
    CHECK(hv_i8042_restore(vm, saved, hv_i8042_state_size()) == 0);
    CHECK(hv_i8042_restore(vm, saved, 1) < 0);
    ((struct i8042 *)saved)->kbd_set = 9;                /* a state no guest can reach */
    CHECK(hv_i8042_restore(vm, saved, hv_i8042_state_size()) < 0);
    uint16_t key = 0x1c;
    struct hv_kbd_stats ks;
    CHECK(hv_i8042_push_keys(vm, &key, 1) == 1);
    hv_i8042_get_stats(vm, &ks);
    CHECK(ks.keys == 1 && ks.dropped == 0 && ks.scancode_set == 2 && ks.scanning && ks.translating);
    CHECK(vm->kbd.obf && vm->kbd.out == 0x1e && vm->irq1_level == 1);
    CHECK(hv_vcpu_complete_io(v) == 0);      /* parked: completes the last exit, runs nothing */
    test_save_ram(vm, host);
    CHECK(hv_vm_resident_bytes(vm) > 0);
    test_guest_debug(v);

    hv_vcpu_destroy(v);
    hv_vm_destroy(vm);
    close(kvm);
    return 0;
}

static void test_crc32c(void)
{
    /* the standard check value, and RFC 3720's vectors (iSCSI) */
    CHECK(hv_crc32c(0, "123456789", 9) == 0xe3069283u);
    CHECK(hv_crc32c_sw(0, "123456789", 9) == 0xe3069283u);
    uint8_t buf[4096 + 64];
    memset(buf, 0, 32);
    CHECK(hv_crc32c(0, buf, 32) == 0x8a9136aau);
    memset(buf, 0xff, 32);
    CHECK(hv_crc32c(0, buf, 32) == 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK(hv_crc32c(0, buf, 32) == 0x46dd794eu);
    CHECK(hv_crc32c(0, buf, 0) == 0);
    /* the instruction and the table agree at every length and alignment; continuing works */
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    int agree = 1;
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 300; len += 7)
            agree &= hv_crc32c_hw(0, buf + off, len) == hv_crc32c_sw(0, buf + off, len);
    CHECK(agree);
    CHECK(hv_crc32c_hw(0, buf, 4096) == hv_crc32c_sw(0, buf, 4096));
    CHECK(hv_crc32c(hv_crc32c(0, buf, 1000), buf + 1000, 3096) == hv_crc32c(0, buf, 4096));
    printf("crc32c: %s\n", hv_crc32c_hw_available() ? "SSE4.2 and the table checked" : "the table (no SSE4.2)");
}

/* Lazy RAM without a guest: this thread reads the slot, the core's thread serves it. */
static void test_lazy_ram(void)
{
    int kvm = hv_kvm_open("/dev/kvm");
    if (kvm < 0)
        return;
    struct hv_vm *vm;
    CHECK(hv_vm_create(kvm, &vm) == 0);
    if (hv_lazy_available() <= 0) {
        fprintf(stderr, "skipped the lazy RAM test: no userfaultfd (%s)\n", hv_last_op());
        hv_vm_destroy(vm);
        close(kvm);
        return;
    }
    enum { PAGES = 8 };
    char path[] = "/tmp/hvtui-lazy-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    static uint8_t page[4096];
    uint64_t runs[] = { 1, 2, 5, 1 };     /* pages 1, 2 and 5 written */
    uint32_t sums[3];
    int k = 0;
    for (int r = 0; r < 2; r++)
        for (uint64_t p = runs[2 * r]; p < runs[2 * r] + runs[2 * r + 1]; p++) {
            memset(page, (int)(0x10 + p), sizeof(page));
            CHECK(pwrite(fd, page, sizeof(page), (off_t)(p * 4096)) == 4096);
            sums[k++] = hv_crc32c(0, page, sizeof(page));
        }
    page[0] ^= 1;                                   /* page 5 in the file goes bad */
    CHECK(pwrite(fd, page, sizeof(page), 5 * 4096) == 4096);
    void *host;
    CHECK(hv_vm_map_ram(vm, 2, 0x40000000ull, PAGES * 4096, -1, 0, &host) == 0);
    struct hv_lazy_region region = { .slot = 2, .file_off = 0, .runs = runs, .nruns = 2 };
    uint64_t bad_runs[] = { 7, 2 };                 /* past the slot: refused */
    struct hv_lazy_region bad = { .slot = 2, .file_off = 0, .runs = bad_runs, .nruns = 1 };
    CHECK(hv_vm_restore_lazy(vm, fd, &bad, 1, sums, 2, HV_LAZY_NO_PREFETCH) == -EINVAL);
    CHECK(hv_vm_restore_lazy(vm, fd, &region, 1, sums, 2, HV_LAZY_NO_PREFETCH) == -EINVAL);   /* 3 pages, 2 sums */
    CHECK(hv_vm_restore_lazy(vm, fd, &region, 1, sums, 3, HV_LAZY_NO_PREFETCH) == 0);
    close(fd);                                      /* the core keeps its own */
    volatile uint8_t *mem = host;
    CHECK(mem[0] == 0 && mem[4095] == 0);           /* a hole */
    CHECK(mem[4096] == 0x11 && mem[2 * 4096 + 4095] == 0x12);
    struct hv_lazy_stats st;
    for (int i = 0; i < 1000; i++) {                /* the thread counts after it has woken us */
        if (hv_lazy_get_stats(vm, &st) == 0 && st.fetched_by_fault == 2)
            break;
        usleep(1000);
    }
    CHECK(st.state == HV_LAZY_RUNNING && st.fetched_by_fault == 2 && st.faults == 3 && st.zero_faults == 1);
    CHECK(mem[5 * 4096] == 0);                      /* the bad page: zeros, never its bytes */
    CHECK(hv_lazy_get_stats(vm, &st) == 0 && st.state == HV_LAZY_FAILED);
    CHECK(st.bad_gpa == 0x40000000ull + 5 * 4096 && st.bad_reason == HV_LAZY_BAD_CHECKSUM);
    CHECK(atomic_load(&vm->ram_failed) == 1);
    CHECK(mem[4096 + 1] == 0x11);                   /* good pages are still served */
    hv_vm_destroy(vm);                              /* stops the thread, then unmaps */
    close(kvm);
}

int main(void)
{
    test_crc32c();
    test_lazy_ram();
    test_uart();
    test_ring();
    test_i8042();
    if (test_vcpu_loop() < 0) {
        if (getenv("HVTUI_REQUIRE_KVM") && !strcmp(getenv("HVTUI_REQUIRE_KVM"), "1")) {
            fprintf(stderr, "FAIL: /dev/kvm unusable and HVTUI_REQUIRE_KVM=1\n");
            failed++;
        } else {
            fprintf(stderr, "skipped the KVM tests: /dev/kvm unusable (%s)\n", strerror(errno));
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
