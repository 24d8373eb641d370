/*
 * bzsetup.S - the setup area of bzimage.bin: boot sector + BZ_SETUP_SECTS setup sectors
 * holding the Linux boot protocol 2.15 setup header (Documentation/arch/x86/boot.rst), then
 * a small real-mode entry. The protected-mode part (bzhead.S, bzimage.c) follows it in the
 * file (bzimage.ld).
 *
 * Header values: setup_sects 4, syssize = protected-mode bytes / 16 (rounded up), boot_flag
 * 0xAA55, jump at 0x200 to the end of the header (0x26c), "HdrS", version 0x020f, loadflags
 * 0x01 (LOADED_HIGH), code32_start 0x100000, initrd_addr_max 0x7fffffff, kernel_alignment
 * 0x200000, relocatable_kernel 1, min_alignment 21, xloadflags 0x1 (XLF_KERNEL_64),
 * cmdline_size 2047, pref_address 0x1000000, init_size = protected-mode image + bss + stack
 * + page tables, rounded up to 4 KiB (from bzimage.ld). Everything else is 0.
 *
 * A 64-bit boot loader (hvtui) never runs this code: it reads the header, loads the part
 * after the (setup_sects + 1) * 512 bytes at a 2 MiB aligned address and jumps to its 64-bit
 * entry at offset 0x200. The real-mode entry below is for loaders that start a bzImage the
 * old way (QEMU -kernel, GRUB linux16): at CS = setup segment + 0x20, IP 0, DS = ES = SS =
 * the setup segment. It builds a zero page at setup segment:0x1000 (header copied to 0x1f1,
 * E820 map from int 0x15 at 0x2d0, count at 0x1e8), opens A20 (port 0x92), loads its own GDT
 * (0x10 flat code, 0x18 flat data, as Linux's __BOOT_CS/__BOOT_DS), enters protected mode and
 * jumps to code32_start with ESI = the zero page: the 32-bit entry at offset 0 of the
 * protected-mode part (bzhead.S).
 */
#define BZ_SETUP_SECTS 4
#define BZ_ZERO_PAGE   0x1000           /* offset in the setup segment */
#define BZ_STACK_TOP   0x3000
#define BZ_E820_MAX    128
#define SMAP           0x534d4150

    .section .bzsetup, "ax"
    .code16
    .globl bz_setup_start
    /* for bzimage.ld's checks of the header layout */
    .globl syssize, code32_start, cmd_line_ptr, cmdline_size, pref_address, init_size, hdr_end
bz_setup_start:
    /* The boot sector: nothing but the start of the header at its end. */
    .org    0x1f1
setup_sects:        .byte   BZ_SETUP_SECTS
root_flags:         .word   0
syssize:            .long   bz_syssize
ram_size:           .word   0
vid_mode:           .word   0xffff          /* NORMAL_VGA */
root_dev:           .word   0
boot_flag:          .word   0xaa55
    /* 0x200: the real-mode entry, jumping over the rest of the header */
    .byte   0xeb, start_of_setup - 1f
1:  .ascii  "HdrS"                          /* 0x202 */
version:            .word   0x020f
realmode_swtch:     .long   0
start_sys_seg:      .word   0x1000
kernel_version:     .word   version_string - bz_setup_start - 0x200
type_of_loader:     .byte   0
loadflags:          .byte   0x01            /* LOADED_HIGH */
setup_move_size:    .word   0x8000
code32_start:       .long   0x100000
ramdisk_image:      .long   0
ramdisk_size:       .long   0
bootsect_kludge:    .long   0
heap_end_ptr:       .word   0
ext_loader_ver:     .byte   0
ext_loader_type:    .byte   0
cmd_line_ptr:       .long   0
initrd_addr_max:    .long   0x7fffffff
kernel_alignment:   .long   0x200000
relocatable_kernel: .byte   1
min_alignment:      .byte   21
xloadflags:         .word   0x1             /* XLF_KERNEL_64 */
cmdline_size:       .long   2047
hardware_subarch:   .long   0
hardware_subarch_data: .quad 0
payload_offset:     .long   0
payload_length:     .long   0
setup_data:         .quad   0
pref_address:       .quad   0x1000000
init_size:          .long   bz_init_size
handover_offset:    .long   0
kernel_info_offset: .long   0
hdr_end:

/* ---- real-mode entry ---- */
start_of_setup:
    cli
    cld
    movw    %ds, %ax
    movw    %ax, %es
    movw    %ax, %ss
    movw    $BZ_STACK_TOP, %sp
    pushw   %ax                             /* CS = DS: offsets here are from the segment */
    pushw   $2f
    lretw
2:
    /* zero page: cleared, then the header as the loader filled it in */
    movw    $BZ_ZERO_PAGE, %di
    movw    $2048, %cx
    xorw    %ax, %ax
    rep stosw
    movw    $0x1f1, %si
    movw    $(BZ_ZERO_PAGE + 0x1f1), %di
    movw    $(hdr_end - setup_sects), %cx
    rep movsb

    /* E820 */
    xorl    %ebx, %ebx
    xorw    %si, %si                        /* entries */
    movw    $(BZ_ZERO_PAGE + 0x2d0), %di
3:  movl    $0xe820, %eax
    movl    $SMAP, %edx
    movl    $20, %ecx
    int     $0x15
    jc      4f
    cmpl    $SMAP, %eax
    jne     4f
    incw    %si
    addw    $20, %di
    cmpw    $BZ_E820_MAX, %si
    jae     4f
    testl   %ebx, %ebx
    jnz     3b
4:  movw    %si, %ax
    movb    %al, BZ_ZERO_PAGE + 0x1e8

    /* A20 on (fast gate) */
    inb     $0x92, %al
    orb     $2, %al
    andb    $0xfe, %al
    outb    %al, $0x92

    /* linear addresses: GDT base, 32-bit target, zero page (ESI) */
    xorl    %eax, %eax
    movw    %ds, %ax
    shll    $4, %eax
    leal    gdt(%eax), %edx
    movl    %edx, gdtr + 2
    leal    pm32(%eax), %edx
    movl    %edx, pm32_ptr
    leal    BZ_ZERO_PAGE(%eax), %esi
    lgdtl   gdtr
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmpl   *pm32_ptr

    .code32
pm32:
    movl    $0x18, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs
    movl    0x214(%esi), %eax               /* code32_start */
    jmp     *%eax

    .balign 8
gdt:
    .quad   0, 0
    .quad   0x00cf9a000000ffff              /* 0x10: code, flat, 32-bit */
    .quad   0x00cf92000000ffff              /* 0x18: data, flat */
gdtr:
    .word   gdtr - gdt - 1
    .long   0
pm32_ptr:
    .long   0
    .word   0x10
version_string:
    .asciz  "hvtui bzimage test kernel"

    .org    (BZ_SETUP_SECTS + 1) * 512

    .section .note.GNU-stack, "", @progbits
