/* i8042.c - the PS/2 controller and keyboard state machine (see i8042.h). */
#include "i8042.h"
#include <string.h>

#define ST_OBF      0x01
#define ST_SYS      0x04
#define ST_CMD      0x08
#define ST_UNLOCKED 0x10   /* keyboard not inhibited by the key lock */
#define ST_AUX      0x20
#define ST_TIMEOUT  0x40

#define CFG_KBD_INT 0x01
#define CFG_AUX_INT 0x02
#define CFG_SYS     0x04
#define CFG_KBD_OFF 0x10
#define CFG_AUX_OFF 0x20
#define CFG_XLAT    0x40
#define CFG_RESET   (CFG_KBD_INT | CFG_SYS | CFG_XLAT)   /* 0x45: as firmware leaves it */

#define OUT_RESET   0x01   /* output port: the reset line, active low */
#define OUT_A20     0x02

#define KBD_ACK     0xfa
#define KBD_RESEND  0xfe
#define KBD_BAT_OK  0xaa
#define KBD_ECHO    0xee

_Static_assert(sizeof(struct i8042) == 144, "struct i8042 has no padding: it is saved as is");

/* Set 2 to set 1, as the 8042 translates (its table is fixed in the chip). */
static const uint8_t xlat[128] = {
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
};

uint8_t i8042_translate(uint8_t set2)
{
    if (set2 < 0x80)
        return xlat[set2];
    return set2 == 0x83 ? 0x41 : set2 == 0x84 ? 0x54 : set2;   /* F7 and SysRq; the rest pass */
}

static void kbd_defaults(struct i8042 *k)
{
    k->kbd_set = 2;
    k->kbd_leds = 0;
    k->kbd_typematic = 0x2b;   /* 10.9 characters/s after 500 ms */
}

void i8042_reset(struct i8042 *k)
{
    memset(k, 0, sizeof(*k));
    k->version = I8042_STATE_VERSION;
    k->ram[0] = CFG_RESET;
    k->out_port = OUT_RESET | OUT_A20;
    k->kbd_scanning = 1;
    kbd_defaults(k);
}

/* ---- queues ---- */

static void ctl_put(struct i8042 *k, uint8_t byte, uint8_t aux)
{
    if (k->ctl_count == I8042_CTL_QUEUE)
        return;   /* a guest that issues commands and never reads their replies */
    unsigned i = (k->ctl_head + k->ctl_count) % I8042_CTL_QUEUE;
    k->ctl_q[i] = byte;
    k->ctl_aux[i] = aux;
    k->ctl_count++;
}

static void reply(struct i8042 *k, uint8_t byte)
{
    k->kbd_last = byte;
    if (k->reply_count == I8042_REPLY_QUEUE)
        return;   /* commands sent faster than their replies are read */
    k->reply_q[(k->reply_head + k->reply_count) % I8042_REPLY_QUEUE] = byte;
    k->reply_count++;
}

/* The next byte the keyboard sends: its replies before its scancodes. */
static int kbd_next(struct i8042 *k, uint8_t *byte)
{
    if (k->reply_count) {
        *byte = k->reply_q[k->reply_head];
        k->reply_head = (k->reply_head + 1) % I8042_REPLY_QUEUE;
        k->reply_count--;
        return 1;
    }
    if (k->key_count) {
        *byte = k->key_q[k->key_head];
        k->key_head = (k->key_head + 1) % I8042_KEY_QUEUE;
        k->key_count--;
        return 1;
    }
    return 0;
}

/* Move the next waiting byte into an empty output register. */
static void refill(struct i8042 *k)
{
    while (!k->obf) {
        if (k->ctl_count) {
            k->out = k->ctl_q[k->ctl_head];
            k->out_aux = k->ctl_aux[k->ctl_head];
            k->ctl_head = (k->ctl_head + 1) % I8042_CTL_QUEUE;
            k->ctl_count--;
            k->obf = 1;
            return;
        }
        uint8_t b;
        if ((k->ram[0] & CFG_KBD_OFF) || !kbd_next(k, &b))
            return;
        if (k->ram[0] & CFG_XLAT) {
            if (b == 0xf0) {      /* a set-2 break prefix: folded into the next byte */
                k->xlat_break = 1;
                continue;
            }
            b = (uint8_t)(i8042_translate(b) | (k->xlat_break ? 0x80 : 0));
            k->xlat_break = 0;
        }
        k->out = b;
        k->out_aux = 0;
        k->obf = 1;
    }
}

/* ---- the keyboard ---- */

static void kbd_command(struct i8042 *k, uint8_t v)
{
    uint8_t waiting = k->kbd_pending;
    k->kbd_pending = 0;
    switch (waiting) {
    case 0xed:                      /* LEDs: scroll, num, caps lock */
        k->kbd_leds = v & 0x07;
        reply(k, KBD_ACK);
        return;
    case 0xf3:                      /* typematic rate and delay */
        k->kbd_typematic = v & 0x7f;
        reply(k, KBD_ACK);
        return;
    case 0xf0:                      /* scancode set: 0 asks which */
        if (v == 0) {
            reply(k, KBD_ACK);
            reply(k, k->kbd_set);
        } else if (v == 1 || v == 2) {
            k->kbd_set = v;
            reply(k, KBD_ACK);
        } else {
            reply(k, KBD_RESEND);   /* set 3 (or nonsense): not supported */
        }
        return;
    default:
        break;
    }
    switch (v) {
    case 0xed:
    case 0xf0:
    case 0xf3:
        k->kbd_pending = v;
        reply(k, KBD_ACK);
        return;
    case 0xee:
        reply(k, KBD_ECHO);
        return;
    case 0xf2:                      /* identify: an MF2 keyboard */
        reply(k, KBD_ACK);
        reply(k, 0xab);
        reply(k, 0x83);
        return;
    case 0xf4:
        k->kbd_scanning = 1;
        reply(k, KBD_ACK);
        return;
    case 0xf5:                      /* defaults, and stop scanning */
    case 0xf6:                      /* defaults, scanning on */
        kbd_defaults(k);
        k->kbd_scanning = v == 0xf6;
        k->key_count = 0;
        reply(k, KBD_ACK);
        return;
    case 0xfe:
        reply(k, k->kbd_last);
        return;
    case 0xff:                      /* reset: self-test passed */
        kbd_defaults(k);
        k->kbd_scanning = 1;
        k->key_count = 0;
        k->reply_count = 0;
        reply(k, KBD_ACK);
        reply(k, KBD_BAT_OK);
        return;
    default:
        if (v >= 0xf7 && v <= 0xfd) {   /* set-3 key types: acknowledged, nothing to do */
            reply(k, KBD_ACK);
            return;
        }
        reply(k, KBD_RESEND);
        return;
    }
}

/* The bytes of one host key in the keyboard's scancode set; 0 for none. */
static size_t key_bytes(const struct i8042 *k, uint16_t key, uint8_t *b)
{
    static const uint8_t pause2[] = { 0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77 };
    static const uint8_t pause1[] = { 0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5 };
    int brk = (key & I8042_KEY_BREAK) != 0;
    size_t n = 0;
    if (key & ~(0xff | I8042_KEY_E0 | I8042_KEY_BREAK | I8042_KEY_PAUSE))
        return 0;
    if (key & I8042_KEY_PAUSE) {
        if (brk)
            return 0;
        const uint8_t *seq = k->kbd_set == 1 ? pause1 : pause2;
        n = k->kbd_set == 1 ? sizeof(pause1) : sizeof(pause2);
        memcpy(b, seq, n);
        return n;
    }
    uint8_t code = key & 0xff;
    if (code == 0 || code > 0x84)
        return 0;                   /* no key has that set-2 code */
    if (key & I8042_KEY_E0)
        b[n++] = 0xe0;
    if (k->kbd_set == 1) {
        b[n++] = (uint8_t)(i8042_translate(code) | (brk ? 0x80 : 0));
    } else {
        if (brk)
            b[n++] = 0xf0;
        b[n++] = code;
    }
    return n;
}

size_t i8042_push_keys(struct i8042 *k, const uint16_t *keys, size_t n, size_t *dropped)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t b[8];
        size_t len = key_bytes(k, keys[i], b);
        if (!k->kbd_scanning || len == 0) {   /* taken and lost, as a real keyboard would */
            (*dropped)++;
            continue;
        }
        if (k->key_count + len > I8042_KEY_QUEUE)
            break;                  /* full: the host keeps the rest */
        for (size_t j = 0; j < len; j++)
            k->key_q[(k->key_head + k->key_count++) % I8042_KEY_QUEUE] = b[j];
        k->kbd_last = b[len - 1];
    }
    refill(k);
    return i;
}

/* ---- the controller ---- */

uint8_t i8042_read(struct i8042 *k, uint16_t port)
{
    if (port != 0x60) {
        return (uint8_t)((k->obf ? ST_OBF : 0) | (k->ram[0] & CFG_SYS ? ST_SYS : 0) |
                         (k->last_was_command ? ST_CMD : 0) | ST_UNLOCKED |
                         (k->obf && k->out_aux ? ST_AUX : 0) | (k->timeout ? ST_TIMEOUT : 0));
    }
    uint8_t v = k->out;             /* an empty register reads its last byte again */
    if (k->obf) {
        k->obf = 0;
        k->timeout = 0;
        refill(k);
    }
    return v;
}

static uint8_t output_port(const struct i8042 *k)
{
    return (uint8_t)(k->out_port | (k->obf && !k->out_aux ? 0x10 : 0) | (k->obf && k->out_aux ? 0x20 : 0));
}

static int command(struct i8042 *k, uint8_t c)
{
    k->pending = 0;                 /* a new command cancels one waiting for its data */
    if (c >= 0x20 && c <= 0x3f) {
        ctl_put(k, k->ram[c - 0x20], 0);
    } else if ((c >= 0x60 && c <= 0x7f) || (c >= 0xd1 && c <= 0xd4)) {
        k->pending = c;
    } else if (c >= 0xf0) {
        if (!(c & 1))               /* bit 0 low: pulse the reset line */
            return I8042_RESET;
    } else {
        switch (c) {
        case 0xa7: k->ram[0] |= CFG_AUX_OFF; break;
        case 0xa8: k->ram[0] &= (uint8_t)~CFG_AUX_OFF; break;
        case 0xa9: ctl_put(k, 0x00, 0); break;        /* auxiliary interface test: fine */
        case 0xaa: k->ram[0] |= CFG_SYS; ctl_put(k, 0x55, 0); break;   /* self-test passed */
        case 0xab: ctl_put(k, 0x00, 0); break;        /* keyboard interface test: fine */
        case 0xad: k->ram[0] |= CFG_KBD_OFF; break;
        case 0xae: k->ram[0] &= (uint8_t)~CFG_KBD_OFF; break;
        case 0xc0: ctl_put(k, 0x80, 0); break;        /* input port: keyboard not locked */
        case 0xd0: ctl_put(k, output_port(k), 0); break;
        case 0xdd: k->out_port &= (uint8_t)~OUT_A20; break;
        case 0xdf: k->out_port |= OUT_A20; break;
        case 0xe0: ctl_put(k, 0x00, 0); break;        /* test inputs */
        default: break;                               /* unknown: ignored */
        }
    }
    refill(k);
    return 0;
}

int i8042_write(struct i8042 *k, uint16_t port, uint8_t value)
{
    if (port != 0x60) {
        k->last_was_command = 1;
        return command(k, value);
    }
    k->last_was_command = 0;
    uint8_t waiting = k->pending;
    k->pending = 0;
    if (waiting >= 0x60 && waiting <= 0x7f) {
        k->ram[waiting - 0x60] = value;
        if (!(k->ram[0] & CFG_XLAT))
            k->xlat_break = 0;
    } else if (waiting == 0xd1) {
        k->out_port = value & (OUT_RESET | OUT_A20);
        if (!(value & OUT_RESET))
            return I8042_RESET;
    } else if (waiting == 0xd2 || waiting == 0xd3) {
        ctl_put(k, value, waiting == 0xd3);           /* as if the device had sent it */
    } else if (waiting == 0xd4) {
        ctl_put(k, KBD_RESEND, 1);                    /* no mouse: nobody answers */
        k->timeout = 1;
    } else {
        k->ram[0] &= (uint8_t)~CFG_KBD_OFF;          /* sending to the keyboard enables it */
        kbd_command(k, value);
    }
    refill(k);
    return 0;
}

unsigned i8042_irq_lines(const struct i8042 *k)
{
    if (!k->obf)
        return 0;
    if (k->out_aux)
        return (k->ram[0] & CFG_AUX_INT) ? I8042_IRQ_AUX : 0;
    return (k->ram[0] & CFG_KBD_INT) ? I8042_IRQ_KBD : 0;
}

int i8042_state_valid(const struct i8042 *k)
{
    int pending_ok = k->pending == 0 || (k->pending >= 0x60 && k->pending <= 0x7f) ||
                     (k->pending >= 0xd1 && k->pending <= 0xd4);
    int kbd_pending_ok = k->kbd_pending == 0 || k->kbd_pending == 0xed || k->kbd_pending == 0xf0 ||
                         k->kbd_pending == 0xf3;
    for (unsigned i = 0; i < I8042_CTL_QUEUE; i++)
        if (k->ctl_aux[i] > 1)
            return 0;
    return k->version == I8042_STATE_VERSION && pending_ok && kbd_pending_ok &&
           !(k->out_port & ~(OUT_RESET | OUT_A20)) && k->last_was_command <= 1 && k->timeout <= 1 &&
           k->obf <= 1 && k->out_aux <= 1 && k->xlat_break <= 1 &&
           k->ctl_head < I8042_CTL_QUEUE && k->ctl_count <= I8042_CTL_QUEUE &&
           k->kbd_scanning <= 1 && (k->kbd_set == 1 || k->kbd_set == 2) && k->kbd_leds <= 7 &&
           k->kbd_typematic <= 0x7f && k->reply_head < I8042_REPLY_QUEUE &&
           k->reply_count <= I8042_REPLY_QUEUE && k->key_head < I8042_KEY_QUEUE &&
           k->key_count <= I8042_KEY_QUEUE;
}
