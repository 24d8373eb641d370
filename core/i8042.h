/*
 * i8042.h - the PS/2 controller (an 8042) with an MF2 keyboard behind it, as a pure
 * state machine: no ioctl, no lock, no allocation. The caller (vm.c) serialises access,
 * turns i8042_irq_lines() into IRQ 1 and IRQ 12, and ends the machine on I8042_RESET.
 *
 * Controller: the configuration byte and the rest of its 32 bytes of RAM (0x20-0x3f read,
 * 0x60-0x7f write), self-test 0xaa -> 0x55, interface tests 0xab/0xa9 -> 0x00, enable and
 * disable of the keyboard (0xae/0xad) and auxiliary (0xa8/0xa7) ports, the input port
 * (0xc0), the output port (0xd0 read, 0xd1 write: bit 0 low resets, bit 1 is A20;
 * 0xdd/0xdf A20), writes to the keyboard (0xd2) and auxiliary (0xd3, loop back) output
 * buffer, 0xd4 to the auxiliary device (none is attached: 0xfe with the time-out bit),
 * and the pulse commands 0xf0-0xff (an even one pulses the reset line). One output
 * register; bytes behind it wait in bounded queues (controller replies first, then the
 * keyboard's replies, then its scancodes). With configuration bit 6, bytes from the
 * keyboard are translated from scancode set 2 to set 1, as the 8042 does.
 *
 * Keyboard: reset 0xff -> 0xfa 0xaa, LEDs 0xed, echo 0xee, scancode set 0xf0 (get, or
 * set 1 or 2; set 3 is answered 0xfe), identify 0xf2 -> 0xfa 0xab 0x83, typematic 0xf3,
 * enable 0xf4, disable 0xf5, defaults 0xf6, resend 0xfe; anything else 0xfe. Keys come
 * from the host as set-2 codes (hvcore.h HV_KEY_*) and leave in the keyboard's own set.
 */
#ifndef I8042_H
#define I8042_H
#include <stddef.h>
#include <stdint.h>

#define I8042_STATE_VERSION 2
#define I8042_CTL_QUEUE 8     /* controller replies waiting for the output register */
#define I8042_REPLY_QUEUE 8   /* keyboard command replies */
#define I8042_KEY_QUEUE 64    /* keyboard scancode bytes */

/* The full state: also the saved form in snapshots (versioned by I8042_STATE_VERSION). */
struct i8042 {
    uint32_t version;
    uint8_t ram[32];            /* ram[0] is the configuration byte */
    uint8_t pending;            /* a controller command waiting for its data byte, or 0 */
    uint8_t out_port;           /* bit 0: reset line (1 = running), bit 1: A20 */
    uint8_t last_was_command;   /* status bit 3: the last write went to port 0x64 */
    uint8_t timeout;            /* status bit 6 (an auxiliary write nobody answered) */
    uint8_t obf, out, out_aux;  /* the output register: full, its byte, from the aux port */
    uint8_t xlat_break;         /* translation saw 0xf0: the next byte gets bit 7 */
    uint8_t ctl_head, ctl_count;
    uint8_t ctl_q[I8042_CTL_QUEUE];
    uint8_t ctl_aux[I8042_CTL_QUEUE];   /* 1: the byte comes from the auxiliary port */
    /* the keyboard */
    uint8_t kbd_scanning, kbd_set, kbd_leds, kbd_typematic;
    uint8_t kbd_pending;        /* a keyboard command waiting for its parameter, or 0 */
    uint8_t kbd_last;           /* the last byte it sent (for 0xfe, resend) */
    uint8_t reply_head, reply_count;
    uint8_t reply_q[I8042_REPLY_QUEUE];
    uint8_t key_head, key_count;
    uint8_t key_q[I8042_KEY_QUEUE];
};

/* A host key: its set-2 code in bits 0-7, with (hvcore.h has the same as HV_KEY_*): */
#define I8042_KEY_E0    0x0100   /* the code follows an 0xe0 prefix (an extended key) */
#define I8042_KEY_BREAK 0x8000   /* the key's release (break code) */
#define I8042_KEY_PAUSE 0x0200   /* the Pause key: its whole sequence (it has no release) */

#define I8042_RESET 1        /* i8042_write: the guest pulsed the reset line */
#define I8042_IRQ_KBD 0x1    /* i8042_irq_lines: IRQ 1 */
#define I8042_IRQ_AUX 0x2    /* i8042_irq_lines: IRQ 12 */

void i8042_reset(struct i8042 *k);
uint8_t i8042_read(struct i8042 *k, uint16_t port);
int i8042_write(struct i8042 *k, uint16_t port, uint8_t value);   /* I8042_RESET or 0 */
unsigned i8042_irq_lines(const struct i8042 *k);
/* Host keys (HV_KEY_* codes): whole keys only; returns how many were taken (a keyboard
   that is not scanning takes and drops them, as a real one does: *dropped counts them). */
size_t i8042_push_keys(struct i8042 *k, const uint16_t *keys, size_t n, size_t *dropped);
int i8042_state_valid(const struct i8042 *k);
/* The set-2 to set-1 translation of the 8042 (configuration bit 6). */
uint8_t i8042_translate(uint8_t set2);
#endif
