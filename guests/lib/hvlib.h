/*
 * hvlib.h - the small runtime shared by the hvtui tiny guests (no libc).
 *
 * Entry (start.S) calls main(bi) at CPL 3 with IOPL 3 unless the guest says
 * HV_STAY_AT_CPL0; main's return value v goes to the debug-exit port (status v).
 * Console output is serialised between vCPUs by one spinlock and turns "\n" into "\r\n".
 */
#ifndef HVLIB_H
#define HVLIB_H

#include <stdarg.h>
#include <stddef.h>
#include "hvboot.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long s64;

int main(const struct hv_boot_info *bi);

/* Put this at file scope in a guest whose main must start at CPL 0. */
#define HV_STAY_AT_CPL0 const int hv_stay_cpl0 = 1
/* At file scope in a guest whose vCPUs other than 0 run main too (else they halt). */
#define HV_USES_APS const int hv_uses_aps = 1

/* ---- port I/O and CPU helpers ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u64 hv_rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline int hv_cpl(void)
{
    u16 cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return cs & 3;
}

/* ---- runtime (runtime.c, start.S) ---- */
extern volatile u64 hv_tsc_khz;              /* from the boot info; same on every vCPU */
void hv_runtime_init(const struct hv_boot_info *bi);
__attribute__((noreturn)) void hv_exit(u32 status);   /* 4-byte out to port 0xf4 */
__attribute__((noreturn)) void hv_park(void);         /* spin forever (pause loop, no exits) */
void hv_enter_user(void);                    /* at CPL 0: continue at CPL 3, IOPL 3, same stack */
void hv_idle_until(u64 tsc_deadline);        /* idle (port 0x520) until the TSC gets there */
void hv_sleep_us(u64 us);                    /* idle for us, via hv_idle_until */
void hv_sleep_ms(u64 ms);
u64 hv_ms_to_tsc(u64 ms);
u64 hv_uptime_ms(void);                      /* since hv_runtime_init on the first vCPU */

/* ---- spinlock ---- */
typedef struct { volatile u32 v; } hv_spinlock_t;
void hv_spin_lock(hv_spinlock_t *l);
void hv_spin_unlock(hv_spinlock_t *l);

/* ---- 16550 UART at 0x3f8 (serial.c) ---- */
void hv_uart_init(void);                     /* IER 0, 8N1, FIFO on (RX FIFO not cleared) */
void hv_serial_putc(char c);                 /* raw: wait for LSR.THRE, write THR; no lock */
int hv_serial_getc_nonblock(void);           /* LSR.DR ? RBR : -1; no lock */
int hv_getc(void);                           /* blocks; idles between LSR polls, woken by input */

/* ---- console: locked, "\n" -> "\r\n" (serial.c, printf.c) ---- */
void hv_console_lock(void);
void hv_console_unlock(void);
void hv_putc(char c);
void hv_write(const char *s, size_t n);
void hv_puts(const char *s);                 /* s then a new line */
int hv_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int hv_vprintf(const char *fmt, va_list ap);
int hv_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int hv_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
/* %[-][0][width][l|ll|z] d u x X p s c %% */

/* ---- strings and command line (string.c, cmdline.c) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t hv_strlen(const char *s);
int hv_strcmp(const char *a, const char *b);
int hv_strncmp(const char *a, const char *b, size_t n);

const char *hv_cmdline(const struct hv_boot_info *bi);   /* never NULL ("" if none) */
const char *hv_skip_spaces(const char *s);
/* Copies the next word of *s into out (truncated to n-1 chars), advances *s past it.
 * Returns the word's full length, 0 at the end of the string. */
size_t hv_next_word(const char **s, char *out, size_t n);
/* Copies word number idx (0-based) of s into out; returns its length or 0 if absent. */
size_t hv_word(const char *s, unsigned idx, char *out, size_t n);
/* Finds the word "key=value" in s; copies value into out; returns 1 if found. */
int hv_get_kv(const char *s, const char *key, char *out, size_t n);
/* Parses a whole string as decimal or 0x-hex (optional K/M/G suffix is NOT accepted).
 * Returns 0 and *v on success, -1 if s is not a number. */
int hv_parse_u64(const char *s, u64 *v);
/* value of key=N in s, def if the key is absent; *ok (if not NULL) is 0 when malformed. */
u64 hv_get_num(const char *s, const char *key, u64 def, int *ok);

/* ---- memory pattern test (mem.c) ---- */
struct hv_mem_range { u64 start, end; };      /* [start, end), page aligned */
/* The free RAM of bi: [free_start, free_end) and [4 GiB, 4 GiB + high_ram_size). Returns count. */
int hv_free_ranges(const struct hv_boot_info *bi, struct hv_mem_range out[2]);
/* Fills [start, end) (8-byte aligned) with the pattern of seed: qword at a = f(a, seed). */
void hv_mem_fill(u64 start, u64 end, u64 seed);
/* Checks; returns 0 if all good, else the address of the first bad qword (and *got). */
u64 hv_mem_check(u64 start, u64 end, u64 seed, u64 *got, u64 *want);
u64 hv_mem_pattern(u64 addr, u64 seed);

/* ---- deliberate crashes (crash.c) ---- */
/* Kinds: "triple", "ud", "mmio", "hang". Unknown kind: returns -1 at once.
 * mmio returns 1 if the write to HV_MMIO_UNMAPPED came back (the monitor ignored it);
 * the others never return. hang at CPL 0 first drops to CPL 3 (a CPL 0 loop is emulated). */
int hv_crash(const char *kind);
extern const char hv_crash_kinds[];          /* "triple, ud, mmio, hang" */

#endif
