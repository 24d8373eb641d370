/*
 * uart16550.c - the 16550A UART state machine (see uart16550.h).
 *
 * Transmit is instantaneous: a THR write hands the byte to the caller and the THR is
 * empty again at once, so LSR always reads THRE|TEMT and the THR-empty interrupt (if
 * enabled) is raised right away. In loopback mode (MCR bit 4) the byte goes to the
 * receiver instead, as on the chip.
 */
#include "uart16550.h"
#include <string.h>

#define IER_RDI   0x01  /* received data available */
#define IER_THRI  0x02  /* THR empty */
#define IER_RLSI  0x04  /* receiver line status */
#define IER_MSI   0x08  /* modem status */
#define IIR_NONE  0x01
#define IIR_MSI   0x00
#define IIR_THRI  0x02
#define IIR_RDI   0x04
#define IIR_RLSI  0x06
#define IIR_FIFO  0xc0
#define LCR_DLAB  0x80
#define LSR_DR    0x01
#define LSR_OE    0x02
#define LSR_THRE  0x20
#define LSR_TEMT  0x40
#define LSR_ERR_BITS 0x1e
#define MCR_LOOP  0x10
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

void uart_reset(struct uart16550 *u)
{
    memset(u, 0, sizeof(*u));
    u->version = UART_STATE_VERSION;
    u->lsr = LSR_THRE | LSR_TEMT;
    u->msr = 0xb0;          /* DCD, DSR, CTS asserted: a cable is plugged in */
    u->mcr = 0x08;          /* OUT2 */
    u->dll = 0x0c;          /* 9600 baud */
}

static uint8_t iir_of(const struct uart16550 *u)
{
    uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
    if ((u->ier & IER_RLSI) && (u->lsr & LSR_OE))
        return IIR_RLSI | fifo;
    if ((u->ier & IER_RDI) && u->rx_count)
        return IIR_RDI | fifo;
    if ((u->ier & IER_THRI) && u->thr_irq_pending)
        return IIR_THRI | fifo;
    return IIR_NONE | fifo;
}

int uart_irq_pending(const struct uart16550 *u)
{
    return !(iir_of(u) & IIR_NONE);
}

static void rx_put(struct uart16550 *u, uint8_t byte)
{
    if (u->rx_count == UART_FIFO_SIZE) {
        u->lsr |= LSR_OE;
        u->rx_overruns++;
        return;
    }
    u->rx_fifo[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = byte;
    u->rx_count++;
    u->rx_bytes++;
    u->lsr |= LSR_DR;
}

static uint8_t rx_get(struct uart16550 *u)
{
    if (!u->rx_count)
        return 0;
    uint8_t byte = u->rx_fifo[u->rx_head];
    u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
    if (--u->rx_count == 0)
        u->lsr &= ~LSR_DR;
    return byte;
}

size_t uart_rx_push(struct uart16550 *u, const uint8_t *buf, size_t len)
{
    size_t n = 0;
    while (n < len && u->rx_count < UART_FIFO_SIZE)
        rx_put(u, buf[n++]);
    return n;
}

uint8_t uart_read(struct uart16550 *u, unsigned offset)
{
    uint8_t v;
    switch (offset) {
    case UART_RBR_THR:
        if (u->lcr & LCR_DLAB)
            return u->dll;
        return rx_get(u);
    case UART_IER:
        if (u->lcr & LCR_DLAB)
            return u->dlm;
        return u->ier;
    case UART_IIR_FCR:
        v = iir_of(u);
        if ((v & 0x0f) == IIR_THRI)
            u->thr_irq_pending = 0;   /* reading IIR acknowledges THR empty */
        return v;
    case UART_LCR:
        return u->lcr;
    case UART_MCR:
        return u->mcr;
    case UART_LSR:
        v = u->lsr;
        u->lsr &= ~LSR_ERR_BITS;      /* error bits clear on read */
        return v;
    case UART_MSR:
        if (u->mcr & MCR_LOOP) {
            /* loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
            return (uint8_t)(((u->mcr & 0x01) << 5) | ((u->mcr & 0x02) << 3) |
                             ((u->mcr & 0x04) << 4) | ((u->mcr & 0x08) << 4));
        }
        return u->msr;
    case UART_SCR:
        return u->scr;
    default:
        return 0xff;
    }
}

int uart_write(struct uart16550 *u, unsigned offset, uint8_t value, uint8_t *tx)
{
    switch (offset) {
    case UART_RBR_THR:
        if (u->lcr & LCR_DLAB) {
            u->dll = value;
            return 0;
        }
        u->tx_bytes++;
        u->thr_irq_pending = 1;       /* the byte left at once: THR empty again */
        if (u->mcr & MCR_LOOP) {
            rx_put(u, value);
            return 0;
        }
        *tx = value;
        return UART_WRITE_TX;
    case UART_IER:
        if (u->lcr & LCR_DLAB) {
            u->dlm = value;
            return 0;
        }
        /* enabling the THR-empty interrupt while THR is empty raises it */
        if ((value & IER_THRI) && !(u->ier & IER_THRI))
            u->thr_irq_pending = 1;
        u->ier = value & 0x0f;
        return 0;
    case UART_IIR_FCR:
        u->fcr = value & 0xc9;
        if (value & FCR_CLEAR_RX) {
            u->rx_head = 0;
            u->rx_count = 0;
            u->lsr &= ~LSR_DR;
        }
        return 0;
    case UART_LCR:
        u->lcr = value;
        return 0;
    case UART_MCR:
        u->mcr = value & 0x1f;
        return 0;
    case UART_LSR:
    case UART_MSR:
        return 0;                     /* read-only */
    case UART_SCR:
        u->scr = value;
        return 0;
    default:
        return 0;
    }
}

int uart_state_valid(const struct uart16550 *u)
{
    return u->version == UART_STATE_VERSION && u->rx_head < UART_FIFO_SIZE &&
           u->rx_count <= UART_FIFO_SIZE;
}
