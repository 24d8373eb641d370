/*
 * isr32.S - waiting for an interrupt, and the interrupt entry points, of vgademo.elf
 * (32-bit protected mode, flat segments, interrupt gates).
 *
 * No handler returns with iret: KVM's instruction emulator, which runs CPL-0 code on
 * KVM-PVM, has no protected-mode iret. Instead interrupts are enabled in one place only,
 * idle_wait's hlt, and a handler goes back to idle_wait's caller (the interrupted hlt is
 * not worth returning to), with interrupts off as the gate left them.
 *
 * idle_wait: called from C with interrupts off; records its stack, enables interrupts
 * and halts; returns after one interrupt was handled.
 * isr_keyboard: IRQ 1 through the PIC: calls vgademo_irq1() (which reads the controller and
 * sends the end of interrupt), then returns from idle_wait.
 * isr_spurious: any other interrupt (a spurious IRQ 7 / 15): returns from idle_wait.
 * isr_exception_N, N = 0..31: pushes N and calls vgademo_exception(N), which does not
 * return (the demo reports the exception on COM1 and exits).
 */
    .text
    .code32

    .globl idle_wait
    .type idle_wait, @function
idle_wait:
    movl    %esp, idle_esp              /* pointing at idle_wait's return address */
    sti
1:  hlt
    jmp     1b
    .size idle_wait, . - idle_wait

    .globl isr_keyboard
    .type isr_keyboard, @function
isr_keyboard:
    movl    idle_esp, %esp              /* drop the frame of the interrupted hlt */
    cld
    call    vgademo_irq1
    ret
    .size isr_keyboard, . - isr_keyboard

    .globl isr_spurious
    .type isr_spurious, @function
isr_spurious:
    movl    idle_esp, %esp
    ret
    .size isr_spurious, . - isr_spurious

    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .globl isr_exception_\n
isr_exception_\n:
    cld
    pushl   $\n
    call    vgademo_exception
    .endr

    /* the 32 exception entry points, in vector order, for the C side to fill the IDT */
    .section .bss
    .balign 4
idle_esp:
    .skip   4

    .section .rodata
    .balign 4
    .globl isr_exceptions
isr_exceptions:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long   isr_exception_\n
    .endr

    .section .note.GNU-stack, "", @progbits
