/* internal.h - private to lib/: the console sink used by printf.c and serial.c. */
#ifndef HV_INTERNAL_H
#define HV_INTERNAL_H
#include "hvlib.h"

/* Bytes go to the UART in bursts of up to HV_UART_TX_BURST: once LSR.THRE is set the
 * 16550A's transmit FIFO (enabled by hv_uart_init) is empty and takes 16 bytes, so a
 * burst costs one LSR read for up to 16 THR writes. Set it to 1 for a strict
 * byte-by-byte "wait THRE, write THR". */
#ifndef HV_UART_TX_BURST
#define HV_UART_TX_BURST 16
#endif

struct hv_sink {
    void (*put)(struct hv_sink *s, char c);
    char *buf;          /* snprintf: destination */
    size_t size, len;   /* snprintf: capacity, chars produced (even past capacity) */
};

/* Console sink: caller holds the console lock. */
void hv_console_sink_init(struct hv_sink *s);
void hv_console_sink_flush(struct hv_sink *s);
int hv_vformat(struct hv_sink *s, const char *fmt, va_list ap);

#endif
