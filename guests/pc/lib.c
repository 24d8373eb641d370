/* lib.c - COM1 output, numbers, FNV-1a, exit and the "boot: " report lines (see pc.h).
 * Built 32-bit for the protected-mode kernels and 64-bit position independent for bzimage. */
#include "pc.h"

void pc_putc(char c)
{
    while (!(inb(PC_COM1_LSR) & PC_LSR_THRE))
        cpu_relax();
    outb(PC_COM1, (u8)c);
}

void pc_puts(const char *s)
{
    while (*s)
        pc_putc(*s++);
}

void pc_hex(u64 v, int min_digits)
{
    u32 half[2] = { PC_HI(v), PC_LO(v) };
    int i, started = 0;
    pc_puts("0x");
    for (i = 15; i >= 0; i--) {
        u32 nib = (half[i < 8 ? 1 : 0] >> ((i & 7) * 4)) & 0xf;
        if (nib || started || i < min_digits || i == 0) {
            started = 1;
            pc_putc("0123456789abcdef"[nib]);
        }
    }
}

/* Decimal of a 64-bit value with 32-bit divisions only: long division by 10 of four 16-bit
 * limbs (each step divides a value below 10 * 65536). */
void pc_dec(u64 v)
{
    u32 limb[4] = { PC_HI(v) >> 16, PC_HI(v) & 0xffff, PC_LO(v) >> 16, PC_LO(v) & 0xffff };
    char buf[24];
    int n = 0, i;
    do {
        u32 rem = 0, any = 0;
        for (i = 0; i < 4; i++) {
            u32 cur = (rem << 16) | limb[i];
            limb[i] = cur / 10;
            rem = cur % 10;
            any |= limb[i];
        }
        buf[n++] = (char)('0' + rem);
        if (!any)
            break;
    } while (n < (int)sizeof(buf));
    while (n)
        pc_putc(buf[--n]);
}

u32 pc_fnv1a(const u8 *p, unsigned long n)
{
    u32 h = 0x811c9dc5u;
    while (n--) {
        h ^= *p++;
        h *= 0x01000193u;
    }
    return h;
}

void pc_exit(u32 status)
{
    outl(PC_DEBUG_EXIT, status);
    for (;;)   /* only if nobody listens on the debug-exit port */
        __asm__ volatile("cli; hlt");
}

/* ---- the report ---- */

static void line_start(const char *what)
{
    pc_puts("boot: ");
    pc_puts(what);
}

void boot_protocol(const char *name)
{
    line_start("protocol ");
    pc_puts(name);
    pc_putc('\n');
}

void boot_magic(u32 got, u32 want)
{
    if (got != want) {
        line_start("FAIL bad magic ");
        pc_hex(got, 8);
        pc_putc('\n');
        pc_exit(1);
    }
    line_start("magic ");
    pc_hex(got, 8);
    pc_putc('\n');
}

void boot_load(u64 addr)
{
    line_start("load ");
    pc_hex(addr, 1);
    pc_putc('\n');
}

void boot_mem(u64 base, u64 len, u32 type)
{
    line_start("mem ");
    pc_hex(base, 16);
    pc_putc(' ');
    pc_hex(len, 16);
    pc_putc(' ');
    pc_dec(type);
    pc_putc('\n');
}

void boot_meminfo(u32 lower_kib, u32 upper_kib)
{
    line_start("meminfo lower ");
    pc_dec(lower_kib);
    pc_puts(" upper ");
    pc_dec(upper_kib);
    pc_putc('\n');
}

void boot_cmdline(const char *s)
{
    line_start("cmdline ");
    if (s)
        pc_puts(s);
    pc_putc('\n');
}

void boot_module(u32 index, u64 start, u64 size, const char *cmdline)
{
    line_start("module ");
    pc_dec(index);
    pc_puts(" start ");
    pc_hex(start, 8);
    pc_puts(" size ");
    pc_dec(size);
    pc_puts(" fnv ");
    pc_hex(pc_fnv1a(PC_PTR(start), (unsigned long)size), 8);
    pc_puts(" cmdline ");
    if (cmdline)
        pc_puts(cmdline);
    pc_putc('\n');
}

void boot_loader(const char *name)
{
    line_start("loader ");
    pc_puts(name);
    pc_putc('\n');
}

void boot_done(void)
{
    line_start("done\n");
    pc_exit(0);
}
