/*
 * bzhead.S - the start of bzimage.bin's protected-mode part: offset 0 is the 32-bit entry
 * (code32_start), offset 0x200 the 64-bit entry. Position independent: the part runs
 * wherever the loader put it (bzimage.ld checks the offsets; the Makefile checks that the
 * code does not depend on its link address).
 *
 * startup_64 (offset 0x200), the entry of the 64-bit boot protocol: 64-bit mode, paging on
 * with at least the first 4 GiB identity mapped, interrupts off, RSI = the zero page
 * (struct boot_params). Takes its own 16 KiB stack in the bss, zeroes the C bss and calls
 * bz_main(boot_params, address of startup_64); bz_main never returns.
 *
 * startup_32 (offset 0), the entry of the 32-bit boot protocol (bzsetup.S's real-mode entry
 * comes here too): 32-bit protected mode, paging off, flat segments, ESI = the zero page.
 * Builds an identity map of the first 4 GiB with 2 MiB pages in the bss (PML4, PDPT and four
 * page directories: 6 pages), turns on PAE, EFER.LME and paging, loads its own GDT
 * (0x10 64-bit code, 0x18 data) and far-returns to 64-bit code, which zero-extends ESI and
 * goes on at startup_64.
 */
    .section .text.head, "ax"
    .code32
    .globl startup_32
startup_32:
    cli
    cld
    call    1f
1:  popl    %ebp
    subl    $(1b - startup_32), %ebp        /* ebp = where the part runs */

    leal    bz_pgtable_off(%ebp), %ebx      /* 6 pages, 4 KiB aligned */
    movl    %ebx, %edi
    xorl    %eax, %eax
    movl    $(6 * 4096 / 4), %ecx
    rep stosl
    leal    0x1003(%ebx), %eax              /* PML4[0] -> PDPT, present + writable */
    movl    %eax, (%ebx)
    leal    0x2003(%ebx), %eax              /* PDPT[0..3] -> the four page directories */
    movl    %eax, 0x1000(%ebx)
    addl    $0x1000, %eax
    movl    %eax, 0x1008(%ebx)
    addl    $0x1000, %eax
    movl    %eax, 0x1010(%ebx)
    addl    $0x1000, %eax
    movl    %eax, 0x1018(%ebx)
    leal    0x2000(%ebx), %edi              /* 2048 x 2 MiB pages: present, writable, PS */
    movl    $0x83, %eax
    movl    $2048, %ecx
2:  movl    %eax, (%edi)
    addl    $0x200000, %eax
    addl    $8, %edi
    decl    %ecx
    jnz     2b

    movl    %cr4, %eax
    orl     $0x20, %eax                     /* PAE */
    movl    %eax, %cr4
    movl    %ebx, %cr3
    movl    $0xc0000080, %ecx               /* EFER */
    rdmsr
    orl     $0x100, %eax                    /* LME */
    wrmsr

    leal    (gdt64 - startup_32)(%ebp), %eax
    movl    %eax, (gdt64_ptr + 2 - startup_32)(%ebp)
    lgdt    (gdt64_ptr - startup_32)(%ebp)
    movl    $0x18, %eax
    movl    %eax, %ds
    movl    %eax, %es
    movl    %eax, %ss
    movl    %eax, %fs
    movl    %eax, %gs

    movl    %cr0, %eax
    orl     $0x80000001, %eax               /* PG | PE */
    movl    %eax, %cr0
    pushl   $0x10
    leal    (from_32 - startup_32)(%ebp), %eax
    pushl   %eax
    lret

    .code64
from_32:
    movl    %esi, %esi                      /* upper halves are undefined after the switch */
    jmp     startup_64

    .balign 8
gdt64:
    .quad   0, 0
    .quad   0x00af9a000000ffff              /* 0x10: code, 64-bit */
    .quad   0x00cf92000000ffff              /* 0x18: data */
gdt64_ptr:
    .word   gdt64_ptr - gdt64 - 1
    .long   0

    .org    0x200
    .globl startup_64
startup_64:
    cli
    cld
    leaq    bz_stack_top(%rip), %rsp
    movq    %rsi, %rbx                      /* boot_params */
    leaq    __bss_start(%rip), %rdi
    leaq    __bss_end(%rip), %rcx
    subq    %rdi, %rcx
    xorl    %eax, %eax
    rep stosb
    movq    %rbx, %rdi
    leaq    startup_64(%rip), %rsi
    call    bz_main
3:  cli
    hlt
    jmp     3b

    /* Not zeroed: the stack and the 32-bit entry's page tables. */
    .section .noinit, "aw", @nobits
    .balign 4096
    .globl bz_pgtable
bz_pgtable:
    .skip   6 * 4096
    .balign 16
    .skip   16384
bz_stack_top:

    .section .note.GNU-stack, "", @progbits
