/* serial.c - 16550A at 0x3f8 and the locked console on top of it. */
#include "internal.h"

#define COM1 HV_PORT_COM1
#define UART_RBR (COM1 + 0)   /* read, DLAB 0 */
#define UART_THR (COM1 + 0)   /* write, DLAB 0 */
#define UART_IER (COM1 + 1)
#define UART_FCR (COM1 + 2)
#define UART_LCR (COM1 + 3)
#define UART_LSR (COM1 + 5)
#define LSR_DR   0x01
#define LSR_THRE 0x20

static hv_spinlock_t console_lock;
static volatile int uart_ready;

void hv_uart_init(void)
{
    outb(UART_IER, 0x00);     /* no interrupts: the guests poll */
    outb(UART_LCR, 0x03);     /* 8 data bits, no parity, 1 stop bit, DLAB 0 */
    outb(UART_FCR, 0x01);     /* FIFOs on; do NOT clear RX: input may already wait there */
    uart_ready = 1;
}

/* Lazy: a guest that never prints (exitbench) never touches the UART. */
static void uart_ensure(void)
{
    if (!uart_ready)
        hv_uart_init();
}

void hv_serial_putc(char c)
{
    while (!(inb(UART_LSR) & LSR_THRE))
        cpu_relax();
    outb(UART_THR, (u8)c);
}

int hv_serial_getc_nonblock(void)
{
    if (inb(UART_LSR) & LSR_DR)
        return inb(UART_RBR);
    return -1;
}

int hv_getc(void)
{
    for (;;) {
        int c;
        hv_console_lock();
        c = hv_serial_getc_nonblock();
        hv_console_unlock();
        if (c >= 0)
            return c;
        outl(HV_PORT_IDLE, 1000000);  /* idle until input arrives (or 1 s): no host CPU spent */
    }
}

void hv_console_lock(void)
{
    hv_spin_lock(&console_lock);
    uart_ensure();
}

void hv_console_unlock(void)
{
    hv_spin_unlock(&console_lock);
}

/* ---- console sink: translate \n, buffer a burst ---- */
static char burst[HV_UART_TX_BURST];
static size_t burst_len;       /* protected by console_lock */

static void burst_flush(void)
{
    size_t i;
    if (!burst_len)
        return;
    while (!(inb(UART_LSR) & LSR_THRE))
        cpu_relax();
    for (i = 0; i < burst_len; i++)
        outb(UART_THR, (u8)burst[i]);
    burst_len = 0;
}

static void burst_put(char c)
{
    if (burst_len == HV_UART_TX_BURST)
        burst_flush();
    burst[burst_len++] = c;
}

static void console_put(struct hv_sink *s, char c)
{
    (void)s;
    if (c == '\n')
        burst_put('\r');
    burst_put(c);
}

void hv_console_sink_init(struct hv_sink *s)
{
    s->put = console_put;
    s->buf = NULL;
    s->size = s->len = 0;
}

void hv_console_sink_flush(struct hv_sink *s)
{
    (void)s;
    burst_flush();
}

void hv_putc(char c)
{
    hv_console_lock();
    console_put(NULL, c);
    burst_flush();
    hv_console_unlock();
}

void hv_write(const char *p, size_t n)
{
    hv_console_lock();
    while (n--)
        console_put(NULL, *p++);
    burst_flush();
    hv_console_unlock();
}

void hv_puts(const char *p)
{
    hv_console_lock();
    while (*p)
        console_put(NULL, *p++);
    console_put(NULL, '\n');
    burst_flush();
    hv_console_unlock();
}
