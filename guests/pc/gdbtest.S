/*
 * gdbtest.S - the Multiboot 1 header and entry of gdbtest.elf, the kernel the gdb tests
 * debug: an ELF64 that the loader enters in 32-bit protected mode, as every Multiboot
 * kernel is, and that switches to long mode itself before its C code runs, as an OS
 * course's kernel does (so a debugger sees it pass through both modes).
 *
 * _start (32-bit): its own stack, the bss zeroed, identity page tables for the first
 * 1 GiB (2 MiB pages), PAE, EFER.LME, paging, a 64-bit GDT and a far jump to long_entry,
 * which calls kmain64(magic, info) and writes its return value to the debug-exit port.
 * Interrupts stay off throughout; there is no IDT.
 */
#define MB1_MAGIC 0x1BADB002
#define MB1_FLAGS 0x00000003            /* page-align modules, memory information */

    .section .multiboot, "a"
    .balign 4
    .long   MB1_MAGIC
    .long   MB1_FLAGS
    .long   -(MB1_MAGIC + MB1_FLAGS)

    .section .text.start, "ax"
    .code32
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    movl    $__stack_top, %esp
    movl    %eax, %ebp                  /* magic */
    movl    %ebx, %esi                  /* info */

    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    rep stosb

    movl    $pdpt, %eax
    orl     $3, %eax
    movl    %eax, pml4
    movl    $pd, %eax
    orl     $3, %eax
    movl    %eax, pdpt
    xorl    %ecx, %ecx
1:  movl    %ecx, %eax
    shll    $21, %eax
    orl     $0x83, %eax                 /* present, writable, 2 MiB */
    movl    %eax, pd(,%ecx,8)
    incl    %ecx
    cmpl    $512, %ecx
    jne     1b

    movl    $pml4, %eax
    movl    %eax, %cr3
    movl    %cr4, %eax
    orl     $0x20, %eax                 /* PAE */
    movl    %eax, %cr4
    movl    $0xC0000080, %ecx           /* EFER */
    rdmsr
    orl     $0x100, %eax                /* LME */
    wrmsr
    movl    %cr0, %eax
    orl     $0x80000001, %eax           /* PG, PE */
    movl    %eax, %cr0
    lgdt    gdt_ptr
    ljmp    $0x08, $long_entry

    .code64
long_entry:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movl    $__stack_top, %esp
    movl    %ebp, %edi                  /* kmain64(magic, info) */
    call    kmain64
    movl    %eax, %edi
    call    pc_exit
    .size _start, . - _start

    .section .rodata
    .balign 8
gdt:
    .quad   0
    .quad   0x00af9b000000ffff          /* 0x08: 64-bit code */
    .quad   0x00cf93000000ffff          /* 0x10: data */
gdt_ptr:
    .word   gdt_ptr - gdt - 1
    .long   gdt

    .section .bss.pagetables, "aw", @nobits
    .balign 4096
pml4:   .skip 4096
pdpt:   .skip 4096
pd:     .skip 4096

    .section .stack, "aw", @nobits
    .balign 16
    .skip 16384
    .globl __stack_top
__stack_top:

    .section .note.GNU-stack, "", @progbits
