/*
 * mb2.c - the Multiboot 2 test kernel (mb2.elf, header in mb2.S).
 *
 * Entered by start32.S with EAX = 0x36D76289 and EBX = the boot information (u32 total_size,
 * u32 reserved, then tags {u32 type, u32 size, ...}, each starting 8-byte aligned, ending with
 * type 0). The tags may come in any order; the report goes in its fixed order, one pass over
 * the tags for each kind of line: protocol mb2, magic (EAX), load, one mem line per entry of
 * the memory map tag(s) (type 6: entry_size, entry_version, entries {u64 base, u64 length,
 * u32 type, u32 reserved}), meminfo (type 4: mem_lower, mem_upper), cmdline (first type 1 tag;
 * empty when none), one module line per type 3 tag (mod_start, mod_end, string), loader
 * (first type 2 tag), done. Exit 0; wrong magic: "boot: FAIL bad magic 0x...", exit 1.
 */
#include "pc.h"

#define MB2_BOOT_MAGIC 0x36D76289u

enum { TAG_END = 0, TAG_CMDLINE = 1, TAG_LOADER = 2, TAG_MODULE = 3, TAG_MEMINFO = 4,
       TAG_MMAP = 6 };

struct mb2_tag {
    u32 type, size;
};

struct mb2_mmap_entry {
    u64 base, length;
    u32 type, reserved;
};

static u32 info_addr;

/* The next tag of `type` after `prev` (0: from the start), or 0 at the end tag. */
static const struct mb2_tag *next_tag(const struct mb2_tag *prev, u32 type)
{
    u32 end = info_addr + *(const u32 *)PC_PTR(info_addr);
    u32 p = prev ? (u32)(unsigned long)prev + ((prev->size + 7) & ~7u) : info_addr + 8;
    while (p + 8 <= end) {
        const struct mb2_tag *t = PC_PTR(p);
        if (t->type == TAG_END || t->size < 8)
            return 0;
        if (t->type == type)
            return t;
        p += (t->size + 7) & ~7u;
    }
    return 0;
}

u32 kmain(u32 magic, u32 info, u32 load)
{
    const struct mb2_tag *t;
    u32 i;

    boot_protocol("mb2");
    boot_magic(magic, MB2_BOOT_MAGIC);
    boot_load(load);
    info_addr = info;
    for (t = next_tag(0, TAG_MMAP); t; t = next_tag(t, TAG_MMAP)) {
        u32 esize = ((const u32 *)t)[2], p = (u32)(unsigned long)t + 16;
        u32 end = (u32)(unsigned long)t + t->size;
        if (esize < sizeof(struct mb2_mmap_entry))
            continue;
        for (; p + esize <= end; p += esize) {
            const struct mb2_mmap_entry *e = PC_PTR(p);
            boot_mem(e->base, e->length, e->type);
        }
    }
    if ((t = next_tag(0, TAG_MEMINFO)))
        boot_meminfo(((const u32 *)t)[2], ((const u32 *)t)[3]);
    t = next_tag(0, TAG_CMDLINE);
    boot_cmdline(t ? (const char *)t + 8 : 0);
    for (i = 0, t = next_tag(0, TAG_MODULE); t; i++, t = next_tag(t, TAG_MODULE)) {
        const u32 *m = (const u32 *)t;
        boot_module(i, m[2], m[3] - m[2], (const char *)t + 16);
    }
    if ((t = next_tag(0, TAG_LOADER)))
        boot_loader((const char *)t + 8);
    boot_done();
}
