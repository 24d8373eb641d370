/*
 * mb1.S - the Multiboot 1 header of mb1.elf and smp.elf (and, built with -DMB1_AOUT, of the
 * flat binary mb1-aout.bin).
 *
 * Magic 0x1BADB002, flags bit 0 (page-align modules) | bit 1 (memory information); the
 * checksum makes the three words sum to 0. It is the first thing in the image (pc32.ld puts
 * .multiboot first), 4-byte aligned, so well within the first 8 KiB of the file.
 * MB1_AOUT: flag bit 16 (the "a.out kludge") and the address fields, for a file that is not
 * an ELF: header_addr = this header, load_addr = __image_start (the file's first byte),
 * load_end_addr = __load_end (end of the file's data), bss_end_addr = __image_end (the loader
 * zeroes [load_end, bss_end)), entry_addr = _start. pc32.ld links it at 0x200000.
 * mb1.c tells the two apart by bit 16 of mb1_header[1].
 */
#define MB1_MAGIC       0x1BADB002
#define MB1_PAGE_ALIGN  0x00000001
#define MB1_MEMORY_INFO 0x00000002
#define MB1_AOUT_KLUDGE 0x00010000

#ifdef MB1_AOUT
#define MB1_FLAGS (MB1_PAGE_ALIGN | MB1_MEMORY_INFO | MB1_AOUT_KLUDGE)
#else
#define MB1_FLAGS (MB1_PAGE_ALIGN | MB1_MEMORY_INFO)
#endif

    .section .multiboot, "a"
    .balign 4
    .globl mb1_header
mb1_header:
    .long   MB1_MAGIC
    .long   MB1_FLAGS
    .long   -(MB1_MAGIC + MB1_FLAGS)
#ifdef MB1_AOUT
    .long   mb1_header          /* header_addr */
    .long   __image_start       /* load_addr */
    .long   __load_end          /* load_end_addr */
    .long   __image_end         /* bss_end_addr */
    .long   _start              /* entry_addr */
#endif
    .size mb1_header, . - mb1_header

    .section .note.GNU-stack, "", @progbits
