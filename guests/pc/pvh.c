/*
 * pvh.c - the PVH test kernel (pvh.elf; the entry note is in pvh.S).
 *
 * Entered by start32.S (at the XEN_ELFNOTE_PHYS32_ENTRY address) with EBX = the address of
 * struct hvm_start_info; EAX means nothing here. Prints: protocol pvh, magic (start_info
 * magic, 0x336ec578), load, one mem line per memmap entry (only when version >= 1 and
 * memmap_paddr != 0), cmdline (cmdline_paddr; empty when 0), one module line per hvm_modlist
 * entry (paddr, size, cmdline_paddr; empty cmdline when 0), done. No meminfo or loader line.
 * Exit 0; wrong magic: "boot: FAIL bad magic 0x...", exit 1.
 */
#include "pc.h"

#define HVM_START_MAGIC 0x336EC578u

struct hvm_start_info {
    u32 magic;
    u32 version;
    u32 flags;
    u32 nr_modules;
    u64 modlist_paddr;
    u64 cmdline_paddr;
    u64 rsdp_paddr;
    u64 memmap_paddr;
    u32 memmap_entries;
    u32 reserved;
};

struct hvm_modlist_entry {
    u64 paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_entry {
    u64 addr, size;
    u32 type, reserved;
};

_Static_assert(__builtin_offsetof(struct hvm_start_info, modlist_paddr) == 16, "hvm_start_info layout");
_Static_assert(__builtin_offsetof(struct hvm_start_info, memmap_entries) == 48, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_entry) == 24, "hvm_memmap_entry layout");

u32 kmain(u32 magic, u32 info, u32 load)
{
    const struct hvm_start_info *si = PC_PTR(info);
    u32 i;
    (void)magic;

    boot_protocol("pvh");
    boot_magic(si->magic, HVM_START_MAGIC);
    boot_load(load);
    if (si->version >= 1 && si->memmap_paddr) {
        const struct hvm_memmap_entry *e = PC_PTR(si->memmap_paddr);
        for (i = 0; i < si->memmap_entries; i++)
            boot_mem(e[i].addr, e[i].size, e[i].type);
    }
    boot_cmdline(si->cmdline_paddr ? PC_PTR(si->cmdline_paddr) : 0);
    if (si->nr_modules && si->modlist_paddr) {
        const struct hvm_modlist_entry *m = PC_PTR(si->modlist_paddr);
        for (i = 0; i < si->nr_modules; i++)
            boot_module(i, m[i].paddr, m[i].size,
                        m[i].cmdline_paddr ? PC_PTR(m[i].cmdline_paddr) : 0);
    }
    boot_done();
}
