/*
 * gdbtest.c - the kernel the gdb tests debug (gdbtest.elf, built with -g -O0): a
 * function called in a loop, a global variable, and a value computed in a register.
 *
 * Entered in long mode by gdbtest.S. Command line words: ticks=N (3) loops, delay=MS (0)
 * between them (the idle port: time passes without CPU). Prints "gdbtest: start", then for
 * i = 1..N "tick i counter C" where C = gdb_counter after tick(i) (the sum 1 + ... + i),
 * then "gdbtest: value V" where V is what the_value() leaves in RAX (42 unless a debugger
 * changed RAX at the symbol value_ready), and exits 0.
 */
#include "pc.h"

#define IDLE_PORT 0x520                 /* hvtui's paravirtual idle port: sleep up to N us */

volatile u64 gdb_counter;               /* the global variable the tests read */

__attribute__((noinline)) u64 tick(u32 n)
{
    gdb_counter += n;
    return gdb_counter;
}

__attribute__((noinline)) u64 the_value(void)
{
    u64 v;
    __asm__ volatile("mov $42, %0\n"
                     ".globl value_ready\n"
                     "value_ready:\n"
                     "nop"
                     : "=a"(v));
    return v;
}

/* The number after "KEY=" in the command line, or fallback. */
static u32 arg(const char *cmdline, const char *key, u32 fallback)
{
    for (const char *p = cmdline; p && *p; p++) {
        const char *k = key, *q = p;
        while (*k && *q == *k) {
            k++;
            q++;
        }
        if (*k || *q != '=' || (p != cmdline && p[-1] != ' '))
            continue;
        u32 v = 0;
        for (q++; *q >= '0' && *q <= '9'; q++)
            v = v * 10 + (u32)(*q - '0');
        return v;
    }
    return fallback;
}

static void pause_ms(u32 ms)
{
    while (ms) {
        u32 chunk = ms > 500 ? 500 : ms;
        outl(IDLE_PORT, chunk * 1000);
        ms -= chunk;
    }
}

u32 kmain64(u32 magic, u32 info)
{
    const u32 *mbi = PC_PTR(info);
    const char *cmdline = magic == 0x2BADB002 && (mbi[0] & 4) ? PC_PTR(mbi[4]) : 0;
    u32 ticks = arg(cmdline, "ticks", 3);
    u32 delay = arg(cmdline, "delay", 0);

    pc_puts("gdbtest: start\n");
    for (u32 i = 1; i <= ticks; i++) {
        u64 counter = tick(i);
        pc_puts("tick ");
        pc_dec(i);
        pc_puts(" counter ");
        pc_dec(counter);
        pc_putc('\n');
        pause_ms(delay);
    }
    u64 value = the_value();
    pc_puts("gdbtest: value ");
    pc_dec(value);
    pc_putc('\n');
    return 0;
}
