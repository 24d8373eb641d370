/*
 * smp.S - the application-processor side of smp.elf: the real-mode trampoline and the
 * 32-bit AP entry.
 *
 * smp_trampoline .. smp_trampoline_end is copied by the BSP to SMP_TRAMPOLINE (0x8000), the
 * page the STARTUP IPI's vector 0x08 names, so an AP starts there in real mode at
 * CS:IP = 0x0800:0000. It is written to run at that address only: every address in it is
 * SMP_TRAMPOLINE + (label - smp_trampoline), and it leaves through an absolute indirect jump.
 * It loads its own GDT (null, 0x08 flat 32-bit code, 0x10 flat data), sets CR0.PE, far-jumps
 * to 32-bit code, loads the data segments and jumps to smp_ap_entry in the kernel image.
 *
 * smp_ap_entry: takes a ticket with `lock xadd` on smp_ap_ticket (0 for the first AP to get
 * there, 1 for the next...), switches to the ticket's own 1 KiB stack in smp_ap_stacks and
 * calls smp_ap_main(ticket) (smp.c: records its LAPIC ID, then `lock incl` on the check-in
 * counter), then halts with interrupts off. A ticket beyond SMP_MAX_APS halts at once.
 */
#define SMP_TRAMPOLINE  0x8000
#define SMP_MAX_APS     31          /* keep in step with smp.c */
#define SMP_STACK_SHIFT 10          /* 1 KiB per AP */
#define T(label) (SMP_TRAMPOLINE + (label - smp_trampoline))

    .section .rodata.trampoline, "a"
    .globl smp_trampoline, smp_trampoline_end
    .code16
smp_trampoline:
    cli
    cld
    xorw    %ax, %ax
    movw    %ax, %ds
    lgdtl   T(tramp_gdtr)
    movl    %cr0, %eax
    orl     $1, %eax                    /* PE */
    movl    %eax, %cr0
    ljmpl   $0x08, $T(tramp_32)

    .code32
tramp_32:
    movl    $0x10, %eax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    %ax, %fs
    movw    %ax, %gs
    movl    $smp_ap_entry, %eax         /* absolute: this code was copied */
    jmp     *%eax

    .balign 8
tramp_gdt:
    .quad   0
    .quad   0x00cf9a000000ffff          /* 0x08: code, base 0, 4 GiB, 32-bit */
    .quad   0x00cf92000000ffff          /* 0x10: data, base 0, 4 GiB */
tramp_gdtr:
    .word   tramp_gdtr - tramp_gdt - 1
    .long   T(tramp_gdt)
smp_trampoline_end:

    .text
    .code32
    .globl smp_ap_entry
    .type smp_ap_entry, @function
smp_ap_entry:
    movl    $1, %eax
    lock xaddl %eax, smp_ap_ticket      /* eax = this AP's ticket */
    cmpl    $SMP_MAX_APS, %eax
    jae     2f
    leal    1(%eax), %ecx
    shll    $SMP_STACK_SHIFT, %ecx
    leal    smp_ap_stacks(%ecx), %esp   /* top of stack `ticket` */
    pushl   %eax
    call    smp_ap_main
2:  cli
    hlt
    jmp     2b
    .size smp_ap_entry, . - smp_ap_entry

    .section .stack, "aw", @nobits
    .balign 16
smp_ap_stacks:
    .skip   SMP_MAX_APS << SMP_STACK_SHIFT

    .section .note.GNU-stack, "", @progbits
