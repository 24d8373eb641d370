/*
 * start.S - entry of every hvtui tiny guest (see hvboot.h for the machine state on entry).
 *
 * _start: keeps rdi (boot info), checks the magic (wrong: writes 0xbad to the debug-exit
 * port and halts), aligns the stack, and - unless the guest defines hv_stay_cpl0 non-zero
 * (HV_STAY_AT_CPL0 in hvlib.h) - drops to CPL 3 with IOPL 3 by iretq on the same stack.
 * Then hv_runtime_init(bi); v = main(bi); hv_exit(v) (a 4-byte out of v to port 0xf4).
 * vCPUs other than 0 halt at CPL 0 (cli; hlt: no host CPU spent, and KVM reports them
 * HALTED, so the monitor's runaway watchdog leaves them alone) unless the guest defines
 * hv_uses_aps non-zero (HV_USES_APS in hvlib.h): then every vCPU runs main.
 *
 * Why CPL 3: on KVM-PVM (no VT-x) CPL 0 code is emulated instruction by instruction;
 * CPL 3 code runs natively, and IOPL 3 keeps port I/O allowed there.
 */
/* hvboot.h is C only: its numbers are repeated here and checked in runtime.c. */
#define HV_BOOT_MAGIC      0x42545648
#define HV_PORT_DEBUG_EXIT 0xf4

#define USER_CS 0x23
#define USER_SS 0x1b
#define USER_RFLAGS 0x3002      /* IOPL 3, IF 0, bit 1 */

    .section .text.start, "ax"
    .code64
    .globl _start
    .type _start, @function
    .weak hv_stay_cpl0
    .weak hv_uses_aps
_start:
    mov     %rdi, %rbx                  /* boot info, callee-saved from here on */
    cmpl    $HV_BOOT_MAGIC, (%rdi)
    jne     .Lbad_magic
    and     $-16, %rsp

    cmpl    $0, 8(%rdi)                 /* vcpu_index */
    je      .Lbsp
    mov     $hv_uses_aps, %eax          /* weak: 0 when the guest does not define it */
    test    %rax, %rax
    jz      .Lhalt
    cmpl    $0, (%rax)
    je      .Lhalt
.Lbsp:

    mov     $hv_stay_cpl0, %eax         /* weak: 0 when the guest does not define it */
    test    %rax, %rax
    jz      .Lto_user
    cmpl    $0, (%rax)
    jne     .Lrun
.Lto_user:
    mov     %rsp, %rax
    push    $USER_SS
    push    %rax
    push    $USER_RFLAGS
    push    $USER_CS
    lea     .Lrun(%rip), %rax
    push    %rax
    iretq
.Lrun:
    mov     %rbx, %rdi
    call    hv_runtime_init
    mov     %rbx, %rdi
    call    main
    mov     %eax, %edi
    call    hv_exit                     /* does not return */
1:  jmp     1b

.Lbad_magic:
    mov     $0xbad, %eax
    mov     $HV_PORT_DEBUG_EXIT, %dx
    outl    %eax, %dx
.Lhalt:
    cli
2:  hlt
    jmp     2b
    .size _start, . - _start

/*
 * void hv_enter_user(void): called at CPL 0, returns to its caller at CPL 3 with IOPL 3,
 * on the same stack. Clobbers rax and rcx only (both caller-saved).
 */
    .text
    .globl hv_enter_user
    .type hv_enter_user, @function
hv_enter_user:
    pop     %rax                        /* return address */
    mov     %rsp, %rcx                  /* stack as the caller will see it after ret */
    push    $USER_SS
    push    %rcx
    push    $USER_RFLAGS
    push    $USER_CS
    push    %rax
    iretq
    .size hv_enter_user, . - hv_enter_user

    .section .note.GNU-stack, "", @progbits
