/*
 * smp.c - the SMP test kernel (smp.elf): a Multiboot 1 kernel (header in mb1.S) that starts
 * every other processor of the Intel MP 1.4 table with INIT / SIPI / SIPI (AP side: smp.S).
 *
 * 1. Finds the MP floating pointer ("_MP_", 16-byte aligned, length 1 (x 16 bytes), checksum)
 *    in the first KiB of the EBDA (segment in the BDA word at 0x40E), then in 0x9FC00-0x9FFFF,
 *    then in 0xF0000-0xFFFFF; checks its configuration table ("PCMP", base-table checksum),
 *    and walks the entries: processors (type 0, 20 bytes; counted when flag bit 0, enabled,
 *    is set), the first I/O APIC (type 2, 8 bytes), buses and interrupt entries (8 bytes).
 *    Prints "smp: mptable cpus N ioapic ID".
 * 2. Copies the trampoline to 0x8000 and, one AP at a time in table order (skipping the entry
 *    with its own LAPIC ID), sends through the local APIC (the table's LAPIC address,
 *    normally 0xFEE00000; ICR high 0x310 = APIC ID << 24, then ICR low 0x300): INIT assert
 *    (0xC500), INIT de-assert (0x8500), 10 ms, SIPI vector 0x08 (0x608), 200 us, SIPI again,
 *    then waits up to 5 s for that AP to check in. Delays come from PIT channel 0
 *    (ports 0x40/0x43, mode 2, counter latched and read; 1193182 Hz); nothing else is used.
 * 3. Prints "smp: cpu I apic ID up" per AP (I = its index among the enabled processor
 *    entries, ID = the LAPIC ID the AP read itself at 0xFEE00020) and "smp: all N up", exit 0.
 * Failures print one "smp: FAIL ..." line and exit 1: wrong Multiboot magic, no floating
 * pointer, a bad or missing configuration table (MP default configurations are not
 * supported), no I/O APIC entry, more than 32 processors, an AP that never checks in.
 * The kernel overwrites [0x8000, 0x8000 + trampoline size) and never reads its boot info.
 */
#include "pc.h"

#define MB1_BOOT_MAGIC  0x2BADB002u
#define SMP_TRAMPOLINE  0x8000u     /* keep in step with smp.S */
#define SMP_MAX_APS     31u         /* keep in step with smp.S */
#define SMP_MAX_CPUS    (SMP_MAX_APS + 1)

#define LAPIC_ID       0x020
#define LAPIC_ICR_LO   0x300
#define LAPIC_ICR_HI   0x310
#define ICR_BUSY       (1u << 12)
#define ICR_INIT_ASSERT   0xC500u   /* INIT, level triggered, assert */
#define ICR_INIT_DEASSERT 0x8500u   /* INIT, level triggered, de-assert */
#define ICR_STARTUP       0x0600u   /* | vector = page number of the trampoline */

#define PIT_CH0  0x40
#define PIT_CMD  0x43
#define PIT_TICKS_PER_MS 1193u      /* 1193182 Hz */

#define AP_WAIT_MS 5000u

struct mp_floating {
    char signature[4];      /* "_MP_" */
    u32 config;             /* physical address of the configuration table */
    u8 length;              /* in 16-byte units: 1 */
    u8 revision;
    u8 checksum;
    u8 features[5];         /* features[0] != 0: a default configuration, no table */
};

struct mp_config {
    char signature[4];      /* "PCMP" */
    u16 base_length;
    u8 revision;
    u8 checksum;
    char oem[8];
    char product[12];
    u32 oem_table;
    u16 oem_table_size;
    u16 entry_count;
    u32 lapic_addr;
    u16 ext_length;
    u8 ext_checksum;
    u8 reserved;
};

_Static_assert(sizeof(struct mp_floating) == 16, "MP floating pointer layout");
_Static_assert(sizeof(struct mp_config) == 44, "MP configuration table header layout");

/* Shared with the APs (smp.S, smp_ap_main). */
volatile u32 smp_ap_ticket;             /* next AP ticket, taken with lock xadd */
static volatile u32 ap_checked_in;      /* lock incl by each AP when it is done */
static volatile u32 ap_apic_id[SMP_MAX_APS];
static u32 lapic_base;

extern const u8 smp_trampoline[], smp_trampoline_end[];

static void say(const char *s) { pc_puts("smp: "); pc_puts(s); }

static __attribute__((noreturn)) void fail(const char *why)
{
    say("FAIL ");
    pc_puts(why);
    pc_putc('\n');
    pc_exit(1);
}

static u8 sum(const u8 *p, u32 n)
{
    u8 s = 0;
    while (n--)
        s += *p++;
    return s;
}

static const struct mp_floating *scan(u32 start, u32 len)
{
    u32 p;
    for (p = start; p + 16 <= start + len; p += 16) {
        const struct mp_floating *f = PC_PTR(p);
        const u8 *b = PC_PTR(p);
        if (b[0] == '_' && b[1] == 'M' && b[2] == 'P' && b[3] == '_' && f->length == 1 &&
            sum(b, 16) == 0)
            return f;
    }
    return 0;
}

static const struct mp_floating *find_floating(void)
{
    const struct mp_floating *f = 0;
    u32 ebda = (u32)*(const volatile u16 *)pc_phys(0x40E) << 4;   /* BDA: EBDA segment */
    if (ebda)
        f = scan(ebda, 1024);
    if (!f)
        f = scan(0x9FC00, 1024);
    if (!f)
        f = scan(0xF0000, 0x10000);
    return f;
}

/* ---- PIT channel 0 as a clock ---- */

static void pit_start(void)
{
    outb(PIT_CMD, 0x34);    /* channel 0, lobyte/hibyte, mode 2 (rate generator), binary */
    outb(PIT_CH0, 0);
    outb(PIT_CH0, 0);       /* reload 0 = 65536: wraps every 55 ms */
}

static u32 pit_read(void)
{
    u32 lo, hi;
    outb(PIT_CMD, 0x00);    /* latch channel 0 */
    lo = inb(PIT_CH0);
    hi = inb(PIT_CH0);
    return lo | hi << 8;
}

/* Waits until *flag != old or `ticks` PIT ticks have passed; 1 if it changed. Also gives up
 * after 16 polls per tick (a poll is 3 port accesses), in case the PIT does not count. */
static int wait_ticks(const volatile u32 *flag, u32 old, u32 ticks)
{
    u32 last = pit_read(), elapsed = 0, polls = 0;
    while (*flag == old) {
        u32 now = pit_read();
        elapsed += (last - now) & 0xffff;
        last = now;
        if (elapsed >= ticks || ++polls / 16 > ticks)
            return *flag != old;
        cpu_relax();
    }
    return 1;
}

static void delay_ticks(u32 ticks)
{
    static volatile u32 never;
    wait_ticks(&never, 0, ticks);
}

/* ---- local APIC ---- */

static u32 lapic_read(u32 reg) { return *(volatile u32 *)PC_PTR(lapic_base + reg); }
static void lapic_write(u32 reg, u32 v) { *(volatile u32 *)PC_PTR(lapic_base + reg) = v; }

static void send_ipi(u32 apic_id, u32 icr_lo)
{
    u32 i;
    lapic_write(LAPIC_ICR_HI, apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr_lo);
    for (i = 0; i < 100000 && (lapic_read(LAPIC_ICR_LO) & ICR_BUSY); i++)
        cpu_relax();
}

void smp_ap_main(u32 ticket)
{
    ap_apic_id[ticket] = lapic_read(LAPIC_ID) >> 24;
    __asm__ volatile("lock incl %0" : "+m"(ap_checked_in) : : "memory");
}

u32 kmain(u32 magic, u32 info, u32 load)
{
    const struct mp_floating *fp;
    const struct mp_config *cfg;
    const u8 *e, *end;
    u32 cpu_apic[SMP_MAX_CPUS], cpus = 0, ioapic = 0, have_ioapic = 0, i, n, self, up = 0;
    u32 ap_index[SMP_MAX_APS], ap_ticket[SMP_MAX_APS];
    (void)info;
    (void)load;

    if (magic != MB1_BOOT_MAGIC) {
        say("FAIL bad magic ");
        pc_hex(magic, 8);
        pc_putc('\n');
        return 1;
    }
    if (!(fp = find_floating()))
        fail("no MP floating pointer structure");
    if (!fp->config)
        fail("MP default configuration (no configuration table): not supported");
    cfg = PC_PTR(fp->config);
    if (cfg->signature[0] != 'P' || cfg->signature[1] != 'C' || cfg->signature[2] != 'M' ||
        cfg->signature[3] != 'P' || cfg->base_length < sizeof(*cfg) ||
        sum((const u8 *)cfg, cfg->base_length) != 0)
        fail("bad MP configuration table");
    lapic_base = cfg->lapic_addr ? cfg->lapic_addr : 0xFEE00000u;

    e = (const u8 *)(cfg + 1);
    end = (const u8 *)cfg + cfg->base_length;
    for (n = 0; n < cfg->entry_count && e < end; n++) {
        if (e[0] == 0) {                    /* processor */
            if (e[3] & 1) {
                if (cpus == SMP_MAX_CPUS)
                    fail("more than 32 processors");
                cpu_apic[cpus++] = e[1];
            }
            e += 20;
        } else if (e[0] <= 4) {             /* bus, I/O APIC, I/O and local interrupts */
            if (e[0] == 2 && !have_ioapic) {
                have_ioapic = 1;
                ioapic = e[1];
            }
            e += 8;
        } else {
            break;                          /* unknown entry: its length is unknown */
        }
    }
    if (!have_ioapic)
        fail("no I/O APIC entry in the MP table");
    say("mptable cpus ");
    pc_dec(cpus);
    pc_puts(" ioapic ");
    pc_dec(ioapic);
    pc_putc('\n');

    {
        const u8 *s = smp_trampoline;
        u8 *d = pc_phys(SMP_TRAMPOLINE);
        while (s < smp_trampoline_end)
            *d++ = *s++;
    }
    self = lapic_read(LAPIC_ID) >> 24;
    pit_start();
    for (i = 0; i < cpus; i++) {
        u32 before = ap_checked_in;
        if (cpu_apic[i] == self)
            continue;
        send_ipi(cpu_apic[i], ICR_INIT_ASSERT);
        send_ipi(cpu_apic[i], ICR_INIT_DEASSERT);
        delay_ticks(10 * PIT_TICKS_PER_MS);
        send_ipi(cpu_apic[i], ICR_STARTUP | (SMP_TRAMPOLINE >> 12));
        delay_ticks(PIT_TICKS_PER_MS / 5);
        if (ap_checked_in == before)
            send_ipi(cpu_apic[i], ICR_STARTUP | (SMP_TRAMPOLINE >> 12));
        if (!wait_ticks(&ap_checked_in, before, AP_WAIT_MS * PIT_TICKS_PER_MS)) {
            say("FAIL cpu ");
            pc_dec(i);
            pc_puts(" apic ");
            pc_dec(cpu_apic[i]);
            pc_puts(" did not start\n");
            return 1;
        }
        ap_index[up] = i;
        ap_ticket[up] = before;
        up++;
    }
    for (i = 0; i < up; i++) {
        say("cpu ");
        pc_dec(ap_index[i]);
        pc_puts(" apic ");
        pc_dec(ap_apic_id[ap_ticket[i]]);
        pc_puts(" up\n");
    }
    say("all ");
    pc_dec(up + 1);
    pc_puts(" up\n");
    return 0;
}
