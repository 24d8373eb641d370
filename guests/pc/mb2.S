/*
 * mb2.S - the Multiboot 2 header of mb2.elf.
 *
 * magic 0xE85250D6, architecture 0 (i386 protected mode), header_length (the whole header,
 * 56 bytes), checksum (the four words sum to 0 mod 2^32), then 8-byte aligned tags:
 *   information request (type 1, flags 0 = required, size 28): asks for tags 1 (command
 *   line), 2 (boot loader name), 3 (modules), 4 (basic memory information), 6 (memory map);
 *   4 bytes of padding (the next tag starts 8-byte aligned; size does not count them);
 *   end tag (type 0, flags 0, size 8).
 * No address or entry tag: the loader takes the ELF's program headers and e_entry.
 * The header is first in the image (pc32.ld), so within the first 32 KiB of the file.
 */
#define MB2_MAGIC 0xE85250D6
#define MB2_ARCH  0

    .section .multiboot2, "a"
    .balign 8
    .globl mb2_header
mb2_header:
    .long   MB2_MAGIC
    .long   MB2_ARCH
    .long   mb2_header_end - mb2_header
    .long   -(MB2_MAGIC + MB2_ARCH + (mb2_header_end - mb2_header))

    .balign 8
1:  .short  1                   /* information request */
    .short  0                   /* flags: not optional */
    .long   2f - 1b             /* size, without the padding */
    .long   1, 2, 3, 4, 6
2:
    .balign 8
    .short  0                   /* end */
    .short  0
    .long   8
mb2_header_end:
    .size mb2_header, . - mb2_header

    .section .note.GNU-stack, "", @progbits
