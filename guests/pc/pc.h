/*
 * pc.h - shared by the PC boot-protocol test kernels in guests/pc (see ../README.md).
 *
 * Each kernel prints what its boot loader gave it on COM1 (polled, "\n" line ends, no UART
 * set-up) as "boot: ..." lines and ends with a 4-byte `out` of its status to the debug-exit
 * port 0xf4. lib.c is built twice: 32-bit (mb1, mb1-aout, mb2, pvh, smp) and 64-bit position
 * independent (bzimage). The 32-bit code never divides a 64-bit value (there is no libgcc):
 * 64-bit numbers travel as u64 but are printed from their two 32-bit halves.
 */
#ifndef PC_H
#define PC_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define PC_COM1       0x3f8
#define PC_COM1_LSR   0x3fd
#define PC_LSR_THRE   0x20
#define PC_DEBUG_EXIT 0xf4

/* A guest-physical address as a pointer (identity mapped, or paging off). Addresses above
 * 4 GiB cannot be reached by the 32-bit kernels: they are truncated there. */
#define PC_PTR(a) ((const void *)(unsigned long)(a))
/* The same for a constant address: hidden from gcc, which takes a pointer made from a small
 * constant for an object of size 0 (-Warray-bounds). */
static inline void *pc_phys(unsigned long a)
{
    __asm__("" : "+r"(a));
    return (void *)a;
}
#define PC_HI(v)  ((u32)((u64)(v) >> 32))
#define PC_LO(v)  ((u32)(v))

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* ---- console (lib.c) ---- */
void pc_putc(char c);
void pc_puts(const char *s);              /* as is, no newline added */
void pc_hex(u64 v, int min_digits);       /* "0x" + at least min_digits lowercase digits */
void pc_dec(u64 v);
u32 pc_fnv1a(const u8 *p, unsigned long n);  /* 32-bit FNV-1a */
__attribute__((noreturn)) void pc_exit(u32 status);  /* outl to 0xf4, then cli; hlt forever */

/* ---- the "boot: " report, in this order (lib.c) ---- */
void boot_protocol(const char *name);                 /* boot: protocol NAME */
void boot_magic(u32 got, u32 want);                   /* boot: magic 0x...; wrong: FAIL line, exit 1 */
void boot_load(u64 addr);                             /* boot: load 0x... */
void boot_mem(u64 base, u64 len, u32 type);           /* boot: mem 0x<16> 0x<16> TYPE */
void boot_meminfo(u32 lower_kib, u32 upper_kib);      /* boot: meminfo lower L upper U */
void boot_cmdline(const char *s);                     /* boot: cmdline S (NULL: empty) */
void boot_module(u32 index, u64 start, u64 size, const char *cmdline);  /* NULL cmdline: empty */
void boot_loader(const char *name);                   /* boot: loader NAME */
__attribute__((noreturn)) void boot_done(void);       /* boot: done, exit 0 */

/* ---- entry (start32.S) for the 32-bit kernels ----
 * magic = EAX and info = EBX as the loader left them; load = where the image actually runs
 * (the entry symbol's run-time address minus its offset in the image). Returns the status. */
u32 kmain(u32 magic, u32 info, u32 load);

#endif
