/*
 * mb1.c - the Multiboot 1 test kernel (mb1.elf; mb1-aout.bin is the same code behind an
 * a.out-kludge header, see mb1.S).
 *
 * Entered by start32.S with EAX = 0x2BADB002 and EBX = the multiboot_info address. Prints,
 * one "boot: " line each: protocol mb1 (or mb1-aout), magic (EAX), load, one mem line per
 * memory-map entry (flag bit 6: mmap_addr/mmap_length; each entry starts with its own u32
 * size, which does not count itself), meminfo (flag bit 0: mem_lower/mem_upper in KiB),
 * cmdline (flag bit 2; empty when absent), one module line per module (flag bit 3;
 * size = mod_end - mod_start, FNV-1a of its bytes, its string), loader (flag bit 9), done.
 * Exit 0; wrong magic: "boot: FAIL bad magic 0x...", exit 1.
 */
#include "pc.h"

#define MB1_BOOT_MAGIC  0x2BADB002u
#define MB1_AOUT_KLUDGE 0x00010000u

#define MBI_MEM     (1u << 0)
#define MBI_CMDLINE (1u << 2)
#define MBI_MODS    (1u << 3)
#define MBI_MMAP    (1u << 6)
#define MBI_LOADER  (1u << 9)

struct mb1_info {
    u32 flags;
    u32 mem_lower, mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 mods_count, mods_addr;
    u32 syms[4];
    u32 mmap_length, mmap_addr;
    u32 drives_length, drives_addr;
    u32 config_table;
    u32 boot_loader_name;
};

struct mb1_module {
    u32 mod_start, mod_end;
    u32 string;
    u32 reserved;
};

struct mb1_mmap_entry {
    u32 size;               /* of the rest of the entry */
    u64 base, length;
    u32 type;
} __attribute__((packed));

_Static_assert(__builtin_offsetof(struct mb1_info, mmap_length) == 44, "multiboot_info layout");
_Static_assert(__builtin_offsetof(struct mb1_info, boot_loader_name) == 64, "multiboot_info layout");

extern const u32 mb1_header[];

u32 kmain(u32 magic, u32 info, u32 load)
{
    const struct mb1_info *mbi = PC_PTR(info);
    u32 flags, i;

    boot_protocol(mb1_header[1] & MB1_AOUT_KLUDGE ? "mb1-aout" : "mb1");
    boot_magic(magic, MB1_BOOT_MAGIC);
    boot_load(load);
    flags = mbi->flags;
    if (flags & MBI_MMAP) {
        u32 p = mbi->mmap_addr, end = p + mbi->mmap_length;
        while (p + 4 <= end) {
            const struct mb1_mmap_entry *e = PC_PTR(p);
            if (e->size < 20)   /* malformed: base, length and type need 20 bytes */
                break;
            boot_mem(e->base, e->length, e->type);
            p += e->size + 4;
        }
    }
    if (flags & MBI_MEM)
        boot_meminfo(mbi->mem_lower, mbi->mem_upper);
    boot_cmdline(flags & MBI_CMDLINE && mbi->cmdline ? PC_PTR(mbi->cmdline) : 0);
    if (flags & MBI_MODS) {
        const struct mb1_module *m = PC_PTR(mbi->mods_addr);
        for (i = 0; i < mbi->mods_count; i++)
            boot_module(i, m[i].mod_start, m[i].mod_end - m[i].mod_start,
                        m[i].string ? PC_PTR(m[i].string) : 0);
    }
    if (flags & MBI_LOADER && mbi->boot_loader_name)
        boot_loader(PC_PTR(mbi->boot_loader_name));
    boot_done();
}
