/* ring.c - the console's byte ring (see ring.h). */
#include "ring.h"
#include <string.h>

void ring_init(struct byte_ring *r, uint8_t *storage, size_t size)
{
    r->buf = storage;
    r->size = size;
    r->head = 0;
    r->count = 0;
    r->dropped = 0;
}

void ring_put(struct byte_ring *r, uint8_t byte)
{
    if (r->count == r->size) {        /* full: the oldest byte goes */
        r->head = (r->head + 1) & (r->size - 1);
        r->count--;
        r->dropped++;
    }
    r->buf[(r->head + r->count) & (r->size - 1)] = byte;
    r->count++;
}

size_t ring_get(struct byte_ring *r, uint8_t *out, size_t len)
{
    size_t n = len < r->count ? len : r->count;
    size_t first = r->size - r->head;
    if (first > n)
        first = n;
    memcpy(out, r->buf + r->head, first);
    memcpy(out + first, r->buf, n - first);
    r->head = (r->head + n) & (r->size - 1);
    r->count -= n;
    return n;
}
