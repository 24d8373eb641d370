/*
 * vgademo.c - the VGA text-mode and PS/2 keyboard demo kernel (vgademo.elf): a Multiboot 1
 * kernel (header in mb1.S) whose console is the VGA screen; COM1 gets only the echo of keys.
 *
 * 1. Paints the 80x25 screen at 0xB8000: a title bar, every attribute byte's colours (rows
 *    of background 0-7 with foreground 0-F, then the same with attribute bit 7 set: blinking
 *    text, or bright backgrounds after F2), all 256 glyphs of code page 437, a line to type
 *    on and a status line. With "delay=N" on its command line it waits N ms (PIT channel 0)
 *    each time it reaches the end of a row (slow enough to be caught mid-drawing). The
 *    hardware cursor follows the typing line (CRTC 0x0E/0x0F).
 * 2. Sets up the i8042 as a kernel does, showing each answer on screen row 22: both ports
 *    off, output flushed, configuration byte read, controller self-test, keyboard interface
 *    test, configuration written back with IRQ 1 and set-2-to-1 translation on, keyboard
 *    port on; keyboard reset, identify (0x41 is 0x83 translated), Num Lock LED on. Then the
 *    PIC (vectors 0x20/0x28, only IRQ 1 unmasked) and an IDT, and the row ends in " - ready"
 *    (keys typed before the keyboard reset are skipped, or lost by the reset, as on a PC):
 *      i8042: cfg 75 selftest 55 kbdtest 00 reset fa aa id fa ab 41 leds fa fa - ready
 *    The kernel halts until a key comes (isr32.S idle_wait: IRQ 1 ends the wait; there is
 *    no iret, see there).
 * 3. Echoes every key: on COM1 one line per make or break code,
 *        key: <bytes> <name> make|break[ '<char>'][ [ctrl|alt|ctrl alt]]
 *    (e.g. "key: 1e a make 'a'", "key: e0 48 up make", "key: 2e c make 'c' [ctrl]"), and on
 *    the screen: the character typed appears at the cursor on the typing line (Backspace
 *    deletes, Enter clears the line) and the status line shows the last scancode.
 *    F2 switches attribute bit 7 between blink and bright background, F3 the cursor between
 *    underline and block, Caps Lock toggles its LED; F10 prints "vgademo: bye" and exits 0
 *    (debug-exit port); Ctrl+Alt+Del prints "vgademo: reset" and pulses the i8042's reset
 *    line. An exception prints "vgademo: exception N" and exits 2.
 * Set-1 scancodes are decoded with a US layout. QEMU: qemu-system-i386 -kernel vgademo.elf.
 */
#include "pc.h"

#define MB1_BOOT_MAGIC 0x2BADB002u
#define MBI_CMDLINE    (1u << 2)

#define KBD_DATA   0x60
#define KBD_STATUS 0x64
#define KBD_OBF    0x01
#define KBD_IBF    0x02

#define COLS 80
#define ROWS 25
#define I8042_ROW 22
#define TYPE_ROW 23
#define STATUS_ROW 24
#define TYPE_COL 7          /* after "type> " */
#define HELP_COL 31
#define HELP "F2 blink F3 cursor F10 quit ^Alt-Del reset"

/* attributes */
#define A_TITLE  0x1F       /* white on blue */
#define A_TEXT   0x07
#define A_LABEL  0x0E       /* yellow on black */
#define A_TYPE   0x0F
#define A_STATUS 0x70       /* black on light grey */

struct mb1_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline;
};

static u32 cell_delay;       /* ms after each row (delay=N) */
static int blink_on = 1, block_cursor;
static int type_len;
static u8 leds = 0x02;      /* Num Lock */

/* ---- the screen ---- */

static volatile u16 *vram(void)
{
    return pc_phys(0xB8000);
}

/* PIT channel 0 as a clock (1193182 Hz), for delay=N */
static void pit_start(void)
{
    outb(0x43, 0x34);                   /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(0x40, 0);
    outb(0x40, 0);                      /* reload 65536: wraps every 55 ms */
}

static u32 pit_read(void)
{
    u32 lo, hi;
    outb(0x43, 0x00);                   /* latch channel 0 */
    lo = inb(0x40);
    hi = inb(0x40);
    return lo | hi << 8;
}

static void delay_ms(u32 ms)
{
    u32 last = pit_read(), elapsed = 0, ticks = ms * 1193;
    while (elapsed < ticks) {
        u32 now = pit_read();
        elapsed += (last - now) & 0xffff;
        last = now;
    }
}

static void put(int x, int y, u8 ch, u8 attr)
{
    vram()[y * COLS + x] = (u16)(ch | attr << 8);
    if (cell_delay && x == COLS - 1)    /* delay=N: N ms after each row's last cell */
        delay_ms(cell_delay);
}

static int put_str(int x, int y, const char *s, u8 attr)
{
    while (*s && x < COLS)
        put(x++, y, (u8)*s++, attr);
    return x;
}

static void fill_row(int y, int from, u8 attr)
{
    for (int x = from; x < COLS; x++)
        put(x, y, ' ', attr);
}

static const char hex[] = "0123456789ABCDEF";
static const char lower_hex[] = "0123456789abcdef";

static int put_hex2(int x, int y, u8 v, u8 attr)
{
    put(x++, y, (u8)lower_hex[v >> 4], attr);
    put(x++, y, (u8)lower_hex[v & 15], attr);
    return x;
}

static void serial_hex2(u8 v)
{
    pc_putc(lower_hex[v >> 4]);
    pc_putc(lower_hex[v & 15]);
}

static void crtc(u8 index, u8 value)
{
    outb(0x3D4, index);
    outb(0x3D5, value);
}

static void cursor_at(int x, int y)
{
    u32 pos = (u32)(y * COLS + x);
    crtc(0x0F, (u8)pos);
    crtc(0x0E, (u8)(pos >> 8));
}

static void cursor_shape(void)
{
    crtc(0x0A, block_cursor ? 0x00 : 0x0D);
    crtc(0x0B, block_cursor ? 0x0F : 0x0E);
}

/* Attribute controller register 0x10 (mode control), bit 3: blink (1) or bright backgrounds. */
static void set_blink(int on)
{
    (void)inb(0x3DA);                   /* the flip-flop to "index" */
    outb(0x3C0, 0x30);                  /* index 0x10, with the palette address source on */
    outb(0x3C0, on ? 0x0C : 0x04);
}

static void paint(void)
{
    int x, y, bg, fg;
    fill_row(0, 0, A_TITLE);
    put_str(1, 0, "hvtui VGA demo: 80x25 text, 16 colours, code page 437, PS/2 keyboard", A_TITLE);
    put_str(0, 1, "attr  fg 0-F on bg 0-7; below, attribute bit 7 set (F2: blink / bright bg)", A_LABEL);
    fill_row(1, 75, A_TEXT);
    for (bg = 0; bg < 16; bg++) {
        y = 2 + bg;
        x = put_str(0, y, " bg ", A_TEXT);
        put(x++, y, (u8)hex[bg], A_TEXT);
        put(x++, y, ' ', A_TEXT);
        for (fg = 0; fg < 16; fg++) {
            u8 attr = (u8)(bg << 4 | fg);
            put(x++, y, ' ', attr);
            put(x++, y, (u8)hex[bg], attr);
            put(x++, y, (u8)hex[fg], attr);
            put(x++, y, ' ', attr);
        }
        fill_row(y, x, A_TEXT);
    }
    for (y = 0; y < 4; y++) {
        x = put_str(0, 18 + y, "cp437 ", A_LABEL);
        put(x++, 18 + y, (u8)hex[y * 4], A_LABEL);
        put(x++, 18 + y, '0', A_LABEL);
        put(x++, 18 + y, ' ', A_LABEL);
        for (int i = 0; i < 64; i++)
            put(x++, 18 + y, (u8)(y * 64 + i), A_TEXT);
        fill_row(18 + y, x, A_TEXT);
    }
    fill_row(I8042_ROW, 0, A_TEXT);
    fill_row(TYPE_ROW, 0, A_TYPE);
    put_str(0, TYPE_ROW, "type> ", A_LABEL);
    fill_row(STATUS_ROW, 0, A_STATUS);
    put_str(1, STATUS_ROW, "waiting for a key", A_STATUS);
    put_str(HELP_COL, STATUS_ROW, HELP, A_STATUS);
    cursor_shape();
    cursor_at(TYPE_COL - 1, TYPE_ROW);
}

/* ---- the i8042 ---- */

static int wait_output(void)
{
    for (u32 i = 0; i < 100000; i++)
        if (inb(KBD_STATUS) & KBD_OBF)
            return 1;
    return 0;
}

static void wait_input(void)
{
    for (u32 i = 0; i < 100000 && (inb(KBD_STATUS) & KBD_IBF); i++)
        cpu_relax();
}

static void kbc_command(u8 c)
{
    wait_input();
    outb(KBD_STATUS, c);
}

static void kbc_data(u8 v)
{
    wait_input();
    outb(KBD_DATA, v);
}

static int report_x;

static void show(const char *what, u8 attr)
{
    report_x = put_str(report_x, I8042_ROW, what, attr);
}

static void show_byte(int b)
{
    show(" ", A_TEXT);
    if (b < 0)
        show("--", A_TEXT);
    else
        report_x = put_hex2(report_x, I8042_ROW, (u8)b, A_TEXT);
}

static int read_reply(void)
{
    return wait_output() ? inb(KBD_DATA) : -1;
}

/* A controller command with a one-byte answer, shown as " WHAT xx" ("--": none came). */
static void controller_query(const char *what, u8 command)
{
    kbc_command(command);
    show(" ", A_TEXT);
    show(what, A_LABEL);
    show_byte(read_reply());
}

/* A keyboard command (with param unless negative) and its answer: the acknowledgement, for
 * which keys typed during start-up are skipped, then `more` bytes. */
static void keyboard_command(const char *what, u8 command, int param, int more)
{
    int b, skipped = 0;
    while (inb(KBD_STATUS) & KBD_OBF)   /* keys typed while we started: not answers */
        (void)inb(KBD_DATA);
    show(" ", A_TEXT);
    show(what, A_LABEL);
    kbc_data(command);
    for (int i = 0; i < (param >= 0 ? 2 : 1); i++) {
        if (i)
            kbc_data((u8)param);
        do
            b = read_reply();
        while (b >= 0 && b != 0xFA && b != 0xFE && ++skipped < 64);
        show_byte(b);
    }
    while (more--)
        show_byte(read_reply());
}

static void controller_setup(void)
{
    u8 config;
    kbc_command(0xAD);                  /* keyboard port off */
    kbc_command(0xA7);                  /* auxiliary port off */
    while (inb(KBD_STATUS) & KBD_OBF)
        (void)inb(KBD_DATA);
    report_x = put_str(0, I8042_ROW, "i8042:", A_LABEL);
    kbc_command(0x20);
    config = (u8)read_reply();
    show(" cfg", A_LABEL);
    show_byte(config);
    controller_query("selftest", 0xAA);
    controller_query("kbdtest", 0xAB);
    config = (u8)((config | 0x01 | 0x40) & ~0x10);   /* IRQ 1, translation, keyboard on */
    kbc_command(0x60);
    kbc_data(config);
    kbc_command(0xAE);
    keyboard_command("reset", 0xFF, -1, 1);
    keyboard_command("id", 0xF2, -1, 2);
    keyboard_command("leds", 0xED, leds, 0);
}

/* ---- interrupts ---- */

struct idt_entry {
    u16 offset_lo, selector;
    u8 zero, type;
    u16 offset_hi;
} __attribute__((packed));

static struct idt_entry idt[256];
static volatile u8 ring[256];          /* bytes read by the IRQ 1 handler */
static volatile u8 ring_head, ring_tail;

extern void isr_keyboard(void), isr_spurious(void);
void idle_wait(void);         /* isr32.S: sti; hlt until an interrupt was handled; returns with it off */
extern void (*const isr_exceptions[32])(void);

static void gate(int vector, void (*handler)(void), u16 cs)
{
    u32 a = (u32)(unsigned long)handler;
    idt[vector] = (struct idt_entry){ (u16)a, cs, 0, 0x8E, (u16)(a >> 16) };
}

static void interrupts_setup(void)
{
    struct {
        u16 limit;
        u32 base;
    } __attribute__((packed)) idtr = { sizeof(idt) - 1, (u32)(unsigned long)idt };
    u16 cs;
    int v;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    for (v = 0; v < 256; v++)
        gate(v, v < 32 ? isr_exceptions[v] : isr_spurious, cs);
    gate(0x21, isr_keyboard, cs);
    __asm__ volatile("lidt %0" : : "m"(idtr));
    outb(0x20, 0x11);                   /* ICW1: edge triggered, cascade, ICW4 */
    outb(0xA0, 0x11);
    outb(0x21, 0x20);                   /* ICW2: vectors 0x20-0x27 and 0x28-0x2f */
    outb(0xA1, 0x28);
    outb(0x21, 0x04);                   /* ICW3: the slave on IRQ 2 */
    outb(0xA1, 0x02);
    outb(0x21, 0x01);                   /* ICW4: 8086 mode */
    outb(0xA1, 0x01);
    outb(0x21, 0xFD);                   /* only IRQ 1 */
    outb(0xA1, 0xFF);
}

void vgademo_irq1(void)
{
    while ((inb(KBD_STATUS) & (KBD_OBF | 0x20)) == KBD_OBF) {
        u8 b = inb(KBD_DATA);
        if ((u8)(ring_head + 1) != ring_tail) {
            ring[ring_head] = b;
            ring_head++;
        }
    }
    outb(0x20, 0x20);                   /* end of interrupt */
}

__attribute__((noreturn)) void vgademo_exception(u32 vector)
{
    pc_puts("vgademo: exception ");
    pc_dec(vector);
    pc_putc('\n');
    pc_exit(2);
}

/* ---- keys (scancode set 1, US layout) ---- */

static const char *const names[0x59] = {
    0, "escape", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equal", "backspace", "tab",
    "q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "lbracket", "rbracket", "enter", "lctrl", "a", "s",
    "d", "f", "g", "h", "j", "k", "l", "semicolon", "quote", "backquote", "lshift", "backslash", "z", "x",
    "c", "v", "b", "n", "m", "comma", "period", "slash", "rshift", "kp_multiply", "lalt", "space",
    "capslock", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10", "numlock", "scrolllock",
    "kp7", "kp8", "kp9", "kp_minus", "kp4", "kp5", "kp6", "kp_plus", "kp1", "kp2", "kp3", "kp0",
    "kp_period", 0, 0, 0, "f11", "f12",
};
static const char plain[0x3A] = "\0\0331234567890-=\b\tqwertyuiop[]\n\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
static const char shifted[0x3A] = "\0\033!@#$%^&*()_+\b\tQWERTYUIOP{}\n\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";

static const char *extended_name(u8 code)
{
    switch (code) {
    case 0x1C: return "kp_enter";
    case 0x1D: return "rctrl";
    case 0x35: return "kp_divide";
    case 0x37: return "printscreen";
    case 0x38: return "ralt";
    case 0x47: return "home";
    case 0x48: return "up";
    case 0x49: return "pageup";
    case 0x4B: return "left";
    case 0x4D: return "right";
    case 0x4F: return "end";
    case 0x50: return "down";
    case 0x51: return "pagedown";
    case 0x52: return "insert";
    case 0x53: return "delete";
    case 0x5B: return "lgui";
    case 0x5C: return "rgui";
    case 0x5D: return "menu";
    default: return "unknown";
    }
}

static int shift_l, shift_r, ctrl, alt, caps;
static int prefix, pause_left;

static void type_char(char c)
{
    if (c == '\n') {
        fill_row(TYPE_ROW, TYPE_COL - 1, A_TYPE);
        type_len = 0;
    } else if (c == '\b') {
        if (type_len > 0)
            put(TYPE_COL - 1 + --type_len, TYPE_ROW, ' ', A_TYPE);
    } else if (c >= ' ' && type_len < COLS - TYPE_COL) {
        put(TYPE_COL - 1 + type_len++, TYPE_ROW, (u8)c, A_TYPE);
    }
    cursor_at(TYPE_COL - 1 + type_len, TYPE_ROW);
}

static void status(u8 e0, u8 code, const char *name, int brk)
{
    int x = put_str(1, STATUS_ROW, "last: ", A_STATUS);
    if (e0)
        x = put_str(x, STATUS_ROW, "e0 ", A_STATUS);
    x = put_hex2(x, STATUS_ROW, code, A_STATUS);
    x = put_str(x, STATUS_ROW, " ", A_STATUS);
    x = put_str(x, STATUS_ROW, name, A_STATUS);
    x = put_str(x, STATUS_ROW, brk ? " break" : " make", A_STATUS);
    while (x < HELP_COL)
        put(x++, STATUS_ROW, ' ', A_STATUS);
}

static void key(u8 e0, u8 code)
{
    int brk = code & 0x80;
    u8 k = code & 0x7F;
    const char *name = e0 ? extended_name(k) : (k < 0x59 && names[k] ? names[k] : "unknown");
    char c = 0;

    if (k == 0x2A && !e0)
        shift_l = !brk;
    else if (k == 0x36 && !e0)
        shift_r = !brk;
    else if (k == 0x1D)
        ctrl = !brk;
    else if (k == 0x38)
        alt = !brk;
    else if (k == 0x2A || k == 0x37)    /* Print Screen's fake shift: not a key of its own */
        name = e0 ? "printscreen" : name;
    if (!e0 && !brk && k < 0x3A) {
        int shift = shift_l || shift_r;
        c = shift ? shifted[k] : plain[k];
        if (c >= 'a' && c <= 'z' && caps)
            c = (char)(c - 32);
        else if (c >= 'A' && c <= 'Z' && caps)
            c = (char)(c + 32);
    }

    pc_puts("key: ");
    if (e0)
        pc_puts("e0 ");
    serial_hex2(code);
    pc_putc(' ');
    pc_puts(name);
    pc_puts(brk ? " break" : " make");
    if (c >= ' ' && c < 0x7F) {
        pc_puts(" '");
        pc_putc(c);
        pc_putc('\'');
    }
    if (!brk && (ctrl || alt) && !(k == 0x1D || k == 0x38)) {
        pc_puts(" [");
        pc_puts(ctrl ? (alt ? "ctrl alt" : "ctrl") : "alt");
        pc_putc(']');
    }
    pc_putc('\n');
    status(e0, code, name, brk);

    if (brk)
        return;
    if (ctrl && alt && e0 && k == 0x53) {           /* Ctrl+Alt+Del */
        pc_puts("vgademo: reset\n");
        outb(KBD_STATUS, 0xFE);
        return;
    }
    if (!e0 && k == 0x44) {                         /* F10 */
        pc_puts("vgademo: bye\n");
        pc_exit(0);
    }
    if (!e0 && k == 0x3C) {                         /* F2 */
        blink_on = !blink_on;
        set_blink(blink_on);
    } else if (!e0 && k == 0x3D) {                  /* F3 */
        block_cursor = !block_cursor;
        cursor_shape();
    } else if (!e0 && k == 0x3A) {                  /* Caps Lock: its LED */
        caps = !caps;
        leds = (u8)((leds & ~0x04) | (caps ? 0x04 : 0));
        kbc_data(0xED);
        kbc_data(leds);
    } else if (c && !ctrl && !alt) {
        type_char(c);
    }
}

static void scancode(u8 b)
{
    if (pause_left) {                   /* the rest of E1 1D 45 E1 9D C5 */
        if (--pause_left == 0) {
            pc_puts("key: e1 1d 45 e1 9d c5 pause make\n");
            status(0, 0xe1, "pause", 0);
        }
        return;
    }
    if (b == 0xFA || b == 0xFE)         /* ACK / resend: replies to our LED commands */
        return;
    if (b == 0xE0) {
        prefix = 1;
        return;
    }
    if (b == 0xE1) {
        pause_left = 5;
        return;
    }
    key((u8)prefix, b);
    prefix = 0;
}

static u32 parse_delay(const char *s)
{
    u32 v = 0;
    for (; s && *s; s++) {
        if (s[0] == 'd' && s[1] == 'e' && s[2] == 'l' && s[3] == 'a' && s[4] == 'y' && s[5] == '=') {
            for (s += 6; *s >= '0' && *s <= '9'; s++)
                v = v * 10 + (u32)(*s - '0');
            return v;
        }
    }
    return 0;
}

u32 kmain(u32 magic, u32 info, u32 load)
{
    const struct mb1_info *mbi = PC_PTR(info);
    (void)load;
    if (magic != MB1_BOOT_MAGIC) {
        pc_puts("vgademo: FAIL bad magic\n");
        return 1;
    }
    if (mbi->flags & MBI_CMDLINE && mbi->cmdline)
        cell_delay = parse_delay(PC_PTR(mbi->cmdline));
    if (cell_delay)
        pit_start();
    paint();
    cell_delay = 0;
    controller_setup();
    interrupts_setup();
    vgademo_irq1();         /* a key that came before the PIC was set up: its edge is gone */
    show(" - ready", A_LABEL);
    for (;;) {                          /* interrupts are on only inside idle_wait */
        if (ring_tail == ring_head) {
            idle_wait();
            continue;
        }
        u8 b = ring[ring_tail];
        ring_tail++;
        scancode(b);
    }
}
