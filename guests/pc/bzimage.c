/*
 * bzimage.c - the 64-bit report of bzimage.bin (entry in bzhead.S, header in bzsetup.S).
 *
 * bz_main(bp, entry): bp = struct boot_params (the zero page), entry = the run-time address
 * of startup_64, which sits at offset 0x200 of the protected-mode part. Prints: protocol
 * bzimage, magic (the "HdrS" dword of the copied setup header at bp+0x202, 0x53726448),
 * load (entry - 0x200), one mem line per E820 entry (e820_entries u8 at 0x1e8, at most 128;
 * e820_table at 0x2d0, 20-byte entries {u64 addr, u64 size, u32 type}), cmdline
 * (cmd_line_ptr u32 at 0x228 | ext_cmd_line_ptr u32 at 0xc8 << 32; empty when 0), the
 * initrd as module 0 with an empty cmdline when its size is not 0 (ramdisk_image u32 at 0x218
 * | ext_ramdisk_image at 0x0c0 << 32, ramdisk_size u32 at 0x21c | ext_ramdisk_size at 0x0c4
 * << 32), then screen_info (the zero page's first 0x40 bytes, struct screen_info) as
 * "screen x X y Y page P mode M cols C lines L ega_bx 0x<4> vga V points N", done. Exit 0; no "HdrS": "boot: FAIL bad magic 0x...", exit 1.
 * Built with -fpie: every address is RIP-relative, so it runs wherever it was loaded.
 */
#include "pc.h"

#define BZ_ENTRY64_OFFSET 0x200
#define HDRS_MAGIC        0x53726448u   /* "HdrS" */
#define E820_MAX          128

struct e820_entry {
    u64 addr, size;
    u32 type;
} __attribute__((packed));

static u32 rd32(const u8 *bp, u32 off) { return *(const u32 *)(bp + off); }
static u16 rd16(const u8 *bp, u32 off) { return *(const u16 *)(bp + off); }
static u64 rd64_split(const u8 *bp, u32 lo, u32 hi) { return (u64)rd32(bp, hi) << 32 | rd32(bp, lo); }

__attribute__((noreturn)) void bz_main(const u8 *bp, u64 entry);

/* boot_params.screen_info: what vgacon_startup() reads (include/uapi/linux/screen_info.h).
 * One call per field: a table of string pointers would need relocations (-fpie, no loader). */
static void field(const char *name, u32 v)
{
    pc_puts(name);
    pc_dec(v);
}

static void screen_info(const u8 *bp)
{
    pc_puts("boot: screen");
    field(" x ", bp[0x00]);
    field(" y ", bp[0x01]);
    field(" page ", rd16(bp, 0x04));
    field(" mode ", bp[0x06]);
    field(" cols ", bp[0x07]);
    field(" lines ", bp[0x0e]);
    pc_puts(" ega_bx ");
    pc_hex(rd16(bp, 0x0a), 4);
    field(" vga ", bp[0x0f]);
    field(" points ", rd16(bp, 0x10));
    pc_putc('\n');
}

void bz_main(const u8 *bp, u64 entry)
{
    const struct e820_entry *e = (const struct e820_entry *)(bp + 0x2d0);
    u32 i, n = bp[0x1e8];
    u64 cmdline, initrd, initrd_size;

    boot_protocol("bzimage");
    boot_magic(rd32(bp, 0x202), HDRS_MAGIC);
    boot_load(entry - BZ_ENTRY64_OFFSET);
    if (n > E820_MAX)
        n = E820_MAX;
    for (i = 0; i < n; i++)
        boot_mem(e[i].addr, e[i].size, e[i].type);
    cmdline = rd64_split(bp, 0x228, 0x0c8);
    boot_cmdline(cmdline ? PC_PTR(cmdline) : 0);
    initrd = rd64_split(bp, 0x218, 0x0c0);
    initrd_size = rd64_split(bp, 0x21c, 0x0c4);
    if (initrd_size)
        boot_module(0, initrd, initrd_size, "");
    screen_info(bp);
    boot_done();
}
