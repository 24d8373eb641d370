/*
 * start32.S - the common entry of the 32-bit PC test kernels (mb1, mb1-aout, mb2, pvh, smp).
 *
 * Entered in 32-bit protected mode, paging off, flat CS/DS/ES/SS, by whatever protocol the
 * kernel's header object asks for: EAX = the loader's magic (Multiboot; PVH leaves it
 * undefined), EBX = its boot information. The GDT and IDT the loader used are not touched
 * (no segment register is reloaded) and interrupts stay off.
 *
 * _start: takes its own 16 KiB stack (.stack, not zeroed), zeroes [__bss_start, __bss_end)
 * (the C bss only), works out where it runs (call/pop: the run-time address of _start minus
 * its offset in the image), calls kmain(magic, info, load) and writes its return value to the
 * debug-exit port (pc_exit, which never returns).
 */
    .section .text.start, "ax"
    .code32
    .globl _start
    .type _start, @function
_start:
    cli
    cld
    movl    $__stack_top, %esp
    movl    %eax, %esi                  /* magic */
    movl    %ebx, %ebp                  /* info */

    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    rep stosb

    call    1f
1:  popl    %eax                        /* run-time address of 1 */
    subl    $(1b - _start), %eax        /* run-time address of _start */
    subl    $_start, %eax               /* minus its offset in the image, */
    addl    $__image_start, %eax        /* _start - __image_start */

    pushl   %eax                        /* load */
    pushl   %ebp                        /* info */
    pushl   %esi                        /* magic */
    call    kmain
    pushl   %eax
    call    pc_exit
    .size _start, . - _start

    .section .stack, "aw", @nobits
    .balign 16
    .skip 16384
    .globl __stack_top
__stack_top:

    .section .note.GNU-stack, "", @progbits
