/*
 * uart16550.h - the 16550A UART as a pure state machine.
 *
 * No ioctl, no file descriptor, no lock inside: the caller (vm.c) serialises access,
 * sends transmitted bytes where they belong and drives the interrupt line from
 * uart_irq_pending(). Register model after the National Semiconductor PC16550D
 * data sheet; LSR resets to 0x60 (THR and transmitter empty), RX FIFO of 64 bytes.
 */
#ifndef UART16550_H
#define UART16550_H
#include <stdint.h>
#include <stddef.h>

#define UART_FIFO_SIZE 64

/* Register offsets from the base port */
enum { UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3, UART_MCR = 4,
       UART_LSR = 5, UART_MSR = 6, UART_SCR = 7 };

/* The full state: also the saved form in snapshots (versioned by UART_STATE_VERSION). */
#define UART_STATE_VERSION 1
struct uart16550 {
    uint32_t version;
    uint8_t ier, lcr, mcr, lsr, msr, scr, fcr, dll, dlm;
    uint8_t thr_irq_pending;     /* THR-empty interrupt raised and not yet acknowledged */
    uint8_t rx_head, rx_count;
    uint8_t rx_fifo[UART_FIFO_SIZE];
    uint64_t tx_bytes, rx_bytes, rx_overruns;
};

/* Result of a register write: the guest transmitted a byte (*tx holds it). */
#define UART_WRITE_TX 1

void uart_reset(struct uart16550 *u);
uint8_t uart_read(struct uart16550 *u, unsigned offset);
int uart_write(struct uart16550 *u, unsigned offset, uint8_t value, uint8_t *tx);
size_t uart_rx_push(struct uart16550 *u, const uint8_t *buf, size_t len);
int uart_irq_pending(const struct uart16550 *u);
int uart_state_valid(const struct uart16550 *u);

#endif
