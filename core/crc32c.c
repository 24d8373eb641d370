/*
 * crc32c.c - CRC32C (Castagnoli), the per-page checksum of snapshot format 2.
 *
 * The SSE4.2 crc32 instruction when the CPU has it (checked once, at run time: the
 * file is built without -msse4.2, only the one function is compiled for it), else a
 * byte-wise table. Both give the standard CRC32C: initial ~0, final ~0, so
 * hv_crc32c(0, "123456789", 9) == 0xe3069283, and a CRC can be continued by passing
 * the previous result as crc. No allocation; safe from any thread.
 */
#include "internal.h"
#include <string.h>

#define POLY 0x82f63b78u   /* CRC32C, reflected */

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
static int hw = -1;          /* -1: not asked yet */

static void make_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (POLY & (0u - (c & 1)));
        table[i] = c;
    }
}

uint32_t hv_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&table_once, make_table);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len--)
        c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

int hv_crc32c_hw_available(void)
{
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;   /* a benign race: every thread gets the same */
    }
    return hw;
}

uint32_t hv_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    return hv_crc32c_hw_available() ? crc32c_hw(crc, buf, len) : hv_crc32c_sw(crc, buf, len);
}

uint32_t hv_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return hv_crc32c_hw(crc, buf, len);
}

#define PAGE 4096ull

/* The CRC32C of each page of runs (first page, count) over base, in run order, into sums. */
void hv_crc32c_pages(const uint8_t *base, const uint64_t *runs, uint64_t nruns, uint32_t *sums)
{
    uint64_t k = 0;
    for (uint64_t i = 0; i < nruns; i++)
        for (uint64_t p = runs[2 * i]; p < runs[2 * i] + runs[2 * i + 1]; p++)
            sums[k++] = hv_crc32c(0, base + p * PAGE, PAGE);
}

/* hv_crc32c_pages' check: 0 when every page matches sums, else 1 with *bad_page the first
   page (in base's pages) that does not. */
int hv_crc32c_check_pages(const uint8_t *base, const uint64_t *runs, uint64_t nruns,
                          const uint32_t *sums, uint64_t *bad_page)
{
    uint64_t k = 0;
    for (uint64_t i = 0; i < nruns; i++)
        for (uint64_t p = runs[2 * i]; p < runs[2 * i] + runs[2 * i + 1]; p++)
            if (hv_crc32c(0, base + p * PAGE, PAGE) != sums[k++]) {
                *bad_page = p;
                return 1;
            }
    return 0;
}
