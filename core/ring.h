/*
 * ring.h - a fixed-size byte ring that drops its oldest bytes when full.
 * No allocation after ring_init's caller-provided storage; no locking inside.
 */
#ifndef RING_H
#define RING_H
#include <stdint.h>
#include <stddef.h>

struct byte_ring {
    uint8_t *buf;
    size_t size;    /* power of two */
    size_t head;    /* next byte to read */
    size_t count;
    uint64_t dropped;
};

void ring_init(struct byte_ring *r, uint8_t *storage, size_t size);
void ring_put(struct byte_ring *r, uint8_t byte);
size_t ring_get(struct byte_ring *r, uint8_t *out, size_t len);
#endif
