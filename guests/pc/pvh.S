/*
 * pvh.S - the ELF note that makes pvh.elf a PVH kernel.
 *
 * Name "Xen", type 18 (XEN_ELFNOTE_PHYS32_ENTRY), desc = the 4-byte physical address of the
 * 32-bit entry (_start in start32.S). The section is SHT_NOTE and allocated, so ld gives it a
 * PT_NOTE program header (and it also lies inside the first PT_LOAD).
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .section .note.Xen, "a", @note
    .balign 4
    .long   2f - 1f                     /* namesz, with the NUL */
    .long   4f - 3f                     /* descsz */
    .long   XEN_ELFNOTE_PHYS32_ENTRY    /* type */
1:  .asciz  "Xen"
2:  .balign 4
3:  .long   _start
4:  .balign 4

    .section .note.GNU-stack, "", @progbits
