/* shell - a line-oriented shell on the serial console (vCPU 0 only; others spin).
 * Banner "hvtui shell. Type 'help'.", prompt "hvtui> ". Echoes input, handles backspace
 * (0x7f, 0x08), Ctrl-C (drops the line), Ctrl-U (erases it), ignores escape sequences; a line
 * ends on CR or LF (CR LF counts once). Commands: help, echo, info, mem N, crash KIND, exit N. */
#include "hvlib.h"

#define LINE_MAX 120
#define MIB (1ull << 20)

static const struct hv_boot_info *boot;
static u64 mem_seed = 0x7368656c6c000000ull;

static void cmd_help(const char *args)
{
    (void)args;
    hv_printf("commands:\n"
              "  help         this list\n"
              "  echo ARGS    print ARGS\n"
              "  info         vCPUs, RAM, free RAM, TSC, uptime\n"
              "  mem N        write and verify a pattern over N MiB of free RAM\n"
              "  crash KIND   crash the guest: %s\n"
              "  exit [N]     end the guest with exit status N (default 0)\n",
              hv_crash_kinds);
}

static void cmd_echo(const char *args)
{
    hv_printf("%s\n", args);
}

static u64 free_bytes(void)
{
    struct hv_mem_range r[2];
    int n = hv_free_ranges(boot, r), i;
    u64 total = 0;
    for (i = 0; i < n; i++)
        total += r[i].end - r[i].start;
    return total;
}

static void cmd_info(const char *args)
{
    (void)args;
    hv_printf("vcpus %u, RAM %llu MiB (low end 0x%llx, high %llu MiB), free %llu MiB\n",
              boot->vcpu_count, boot->ram_size / MIB, boot->low_ram_end,
              boot->high_ram_size / MIB, free_bytes() / MIB);
    hv_printf("tsc %llu kHz, uptime %llu ms, cmdline '%s'\n", (u64)hv_tsc_khz, hv_uptime_ms(),
              hv_cmdline(boot));
}

static void cmd_mem(const char *args)
{
    char word[32];
    struct hv_mem_range r[2];
    u64 mib, want, done = 0;
    int n, i;

    if (!hv_word(args, 0, word, sizeof word) || hv_parse_u64(word, &mib) < 0) {
        hv_printf("mem: usage: mem N (MiB, decimal or 0x hex)\n");
        return;
    }
    if (mib > free_bytes() / MIB) {
        hv_printf("mem: error: %llu MiB asked, only %llu MiB free\n", mib, free_bytes() / MIB);
        return;
    }
    want = mib * MIB;
    mem_seed += 0x9e3779b97f4a7c15ull;         /* new data each time */
    n = hv_free_ranges(boot, r);
    for (i = 0; i < n && done < want; i++) {
        u64 len = r[i].end - r[i].start, bad, got = 0, exp = 0;
        if (len > want - done)
            len = want - done;
        hv_mem_fill(r[i].start, r[i].start + len, mem_seed);
        bad = hv_mem_check(r[i].start, r[i].start + len, mem_seed, &got, &exp);
        if (bad) {
            hv_printf("mem: error: mismatch at 0x%llx: read 0x%llx, wrote 0x%llx\n", bad, got, exp);
            return;
        }
        done += len;
    }
    hv_printf("touched %llu MiB\n", mib);
}

static void cmd_crash(const char *args)
{
    char kind[32];
    if (!hv_word(args, 0, kind, sizeof kind))
        __builtin_memcpy(kind, "triple", 7);
    hv_printf("crash: %s\n", kind);
    if (hv_crash(kind) < 0)
        hv_printf("crash: unknown kind '%s' (kinds: %s)\n", kind, hv_crash_kinds);
    else
        hv_printf("crash: the mmio write to 0x%llx came back: the monitor ignored it\n",
                  (u64)HV_MMIO_UNMAPPED);
}

static void cmd_exit(const char *args)
{
    char word[32];
    u64 v = 0;
    if (hv_word(args, 0, word, sizeof word) && hv_parse_u64(word, &v) < 0) {
        hv_printf("exit: usage: exit [N]\n");
        return;
    }
    hv_exit((u32)v);
}

static const struct {
    const char *name;
    void (*fn)(const char *args);
} commands[] = {
    { "help", cmd_help }, { "echo", cmd_echo }, { "info", cmd_info },
    { "mem", cmd_mem },   { "crash", cmd_crash }, { "exit", cmd_exit },
};

static void run_line(const char *line)
{
    char name[32];
    const char *args = line;
    unsigned i;

    if (!hv_next_word(&args, name, sizeof name))
        return;
    args = hv_skip_spaces(args);
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!hv_strcmp(name, commands[i].name)) {
            commands[i].fn(args);
            return;
        }
    }
    hv_printf("unknown command: %s\n", name);
}

static void prompt(void)
{
    hv_write("hvtui> ", 7);
}

int main(const struct hv_boot_info *bi)
{
    static char line[LINE_MAX + 1];
    unsigned len = 0;
    int last = 0, esc = 0;

    boot = bi;
    hv_printf("hvtui shell. Type 'help'.\n");
    prompt();
    for (;;) {
        int c = hv_getc();
        int prev = last;
        last = c;
        if (esc) {                       /* swallow ESC [ ... final, ESC O x, ESC x */
            if (esc == 1 && (c == '[' || c == 'O'))
                esc = c == '[' ? 2 : 3;
            else if (esc == 2 && !(c >= 0x40 && c <= 0x7e))
                ;
            else
                esc = 0;
            continue;
        }
        if (c == '\r' || c == '\n') {
            if (c == '\n' && prev == '\r')
                continue;                /* CR LF: one line end */
            hv_write("\n", 1);
            line[len] = 0;
            run_line(line);
            len = 0;
            prompt();
        } else if (c == 0x7f || c == 0x08) {
            if (len) {
                len--;
                hv_write("\b \b", 3);
            }
        } else if (c == 0x03) {          /* Ctrl-C */
            hv_write("^C\n", 3);
            len = 0;
            prompt();
        } else if (c == 0x15) {          /* Ctrl-U */
            while (len) {
                len--;
                hv_write("\b \b", 3);
            }
        } else if (c == 0x1b) {
            esc = 1;
        } else if (c >= 0x20 && c < 0x7f) {
            if (len < LINE_MAX) {
                line[len++] = (char)c;
                hv_putc((char)c);
            } else {
                hv_putc('\a');           /* line full */
            }
        }
    }
}
