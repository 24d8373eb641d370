/*
 * virtio.h - a small virtio-mmio (version 2, virtio 1.1 §4.2.2) driver with split virtqueues
 * (§2.6), for the hvtui tiny guests. Polled: the guest never takes interrupts; it watches
 * used->idx (and tells the device it wants no interrupts, VIRTQ_AVAIL_F_NO_INTERRUPT).
 *
 * Slots: VIO_SLOTS devices at VIO_MMIO_BASE + i * VIO_MMIO_STRIDE; an empty slot answers the
 * magic and version 2 with DeviceID 0. All register accesses are 32-bit MMIO (each one an exit
 * to the monitor, except QueueNotify, an ioeventfd). Queue memory comes from a vio_arena
 * (identity-mapped RAM, e.g. [bi->free_start, bi->free_end)), so addresses given to the
 * device are the pointers themselves.
 *
 * Use: vio_find(id, 0) -> slot; vio_init(dev, slot, wanted features); vio_queue_setup() per
 * queue; vio_driver_ok(). Then vq_add() chains, vq_kick(), vq_poll()/vq_wait() completions.
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "hvlib.h"

#define VIO_MMIO_BASE   0xd0000000ull
#define VIO_MMIO_STRIDE 0x1000ull
#define VIO_SLOTS       8
#define VIO_MAGIC       0x74726976u          /* "virt" */

/* Registers (byte offsets, 32-bit access) */
#define VIO_R_MAGIC         0x000
#define VIO_R_VERSION       0x004
#define VIO_R_DEVICE_ID     0x008
#define VIO_R_VENDOR_ID     0x00c
#define VIO_R_DEV_FEATURES  0x010
#define VIO_R_DEV_FEAT_SEL  0x014
#define VIO_R_DRV_FEATURES  0x020
#define VIO_R_DRV_FEAT_SEL  0x024
#define VIO_R_QUEUE_SEL     0x030
#define VIO_R_QUEUE_NUM_MAX 0x034
#define VIO_R_QUEUE_NUM     0x038
#define VIO_R_QUEUE_READY   0x044
#define VIO_R_QUEUE_NOTIFY  0x050
#define VIO_R_INT_STATUS    0x060
#define VIO_R_INT_ACK       0x064
#define VIO_R_STATUS        0x070
#define VIO_R_QUEUE_DESC_LO 0x080
#define VIO_R_QUEUE_DESC_HI 0x084
#define VIO_R_QUEUE_DRV_LO  0x090
#define VIO_R_QUEUE_DRV_HI  0x094
#define VIO_R_QUEUE_DEV_LO  0x0a0
#define VIO_R_QUEUE_DEV_HI  0x0a4
#define VIO_R_CONFIG_GEN    0x0fc
#define VIO_R_CONFIG        0x100

/* Device status bits */
#define VIO_S_ACKNOWLEDGE   0x01
#define VIO_S_DRIVER        0x02
#define VIO_S_DRIVER_OK     0x04
#define VIO_S_FEATURES_OK   0x08
#define VIO_S_NEEDS_RESET   0x40
#define VIO_S_FAILED        0x80

/* Device IDs and features */
#define VIO_ID_NONE    0
#define VIO_ID_BLOCK   2
#define VIO_ID_CONSOLE 3
#define VIO_F_VERSION_1 (1ull << 32)

/* Split virtqueue layout (little-endian, x86 is too) */
#define VIRTQ_DESC_F_NEXT  1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1
#define VIO_QUEUE_MAX 256

struct virtq_desc { u64 addr; u32 len; u16 flags; u16 next; };
struct virtq_avail { u16 flags; u16 idx; u16 ring[]; };
struct virtq_used_elem { u32 id; u32 len; };
struct virtq_used { u16 flags; u16 idx; struct virtq_used_elem ring[]; };

/* Error codes (negative returns) */
#define VIO_ERR_NODEV     (-1)   /* no magic / wrong version / no such device */
#define VIO_ERR_FEATURES  (-2)   /* VERSION_1 not offered, or FEATURES_OK did not stick */
#define VIO_ERR_QUEUE     (-3)   /* queue missing (QueueNumMax 0), already ready, or no memory */
#define VIO_ERR_FULL      (-4)   /* not enough free descriptors */
#define VIO_ERR_TIMEOUT   (-5)
#define VIO_ERR_RESET     (-6)   /* device status has NEEDS_RESET or FAILED */

/* A bump allocator over identity-mapped RAM (memory is zeroed when handed out). */
struct vio_arena { u64 next, end; };
void vio_arena_init(struct vio_arena *a, u64 start, u64 end);
void *vio_alloc(struct vio_arena *a, u64 size, u64 align);    /* NULL if it does not fit */

struct virtq {
    u16 index;                  /* queue number on the device */
    u16 num;                    /* QueueNum */
    u16 num_free;
    u16 free_head;              /* descriptor free list, linked through desc[i].next */
    u16 avail_idx;              /* our copy of avail->idx */
    u16 last_used;              /* next used->idx entry to consume */
    volatile struct virtq_desc *desc;
    volatile struct virtq_avail *avail;
    volatile struct virtq_used *used;
    u16 chain_len[VIO_QUEUE_MAX];   /* per head: descriptors in its chain */
};

struct vio_dev {
    int slot;
    u64 base;
    u32 device_id;
    u64 dev_features;           /* offered */
    u64 features;               /* negotiated */
};

static inline u32 vio_read(const struct vio_dev *d, u32 off)
{
    return *(volatile u32 *)(size_t)(d->base + off);
}
static inline void vio_write(const struct vio_dev *d, u32 off, u32 v)
{
    *(volatile u32 *)(size_t)(d->base + off) = v;
}
static inline void vio_mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

u64 vio_slot_base(int slot);
/* DeviceID of a slot: 0 if empty, -1 (as u32 0xffffffff) if the slot is not virtio-mmio v2. */
u32 vio_slot_id(int slot);
/* First slot >= from holding device_id, or -1. */
int vio_find(u32 device_id, int from);

/* Reset, ACKNOWLEDGE, DRIVER, read the offered features, write offered & want (VERSION_1 is
 * always wanted and must be offered), FEATURES_OK and check it stuck. 0 or VIO_ERR_*. */
int vio_init(struct vio_dev *d, int slot, u64 want);
/* Low-level pieces of vio_init, for tests of bad negotiations. */
void vio_reset(struct vio_dev *d);
u64 vio_read_features(struct vio_dev *d);
void vio_write_features(struct vio_dev *d, u64 f);
static inline u32 vio_status(const struct vio_dev *d) { return vio_read(d, VIO_R_STATUS); }
static inline void vio_set_status(struct vio_dev *d, u32 s) { vio_write(d, VIO_R_STATUS, s); }

/* Sets up queue qi with min(num, QueueNumMax) entries (num a power of 2, <= 256) from the
 * arena and marks it ready. 0 or VIO_ERR_QUEUE. */
int vio_queue_setup(struct vio_dev *d, struct virtq *q, u16 qi, u16 num, struct vio_arena *a);
void vio_driver_ok(struct vio_dev *d);
/* Config space reads (32-bit accesses); 64-bit reads retry on a ConfigGeneration change. */
u32 vio_config32(struct vio_dev *d, u32 off);
u64 vio_config64(struct vio_dev *d, u32 off);

/* One buffer of a chain: device-readable (write = 0) or device-writable (write = 1). */
struct vio_buf { u64 addr; u32 len; int write; };
/* Puts the chain bufs[0..n) in the ring (descriptors + an avail entry; no notify).
 * Returns the head descriptor id, or VIO_ERR_FULL. */
int vq_add(struct virtq *q, const struct vio_buf *bufs, int n);
extern u64 vio_notifies;        /* QueueNotify writes made so far (vq_kick, vq_notify) */
/* Publishes avail->idx (after a fence) and notifies the device unless it said NO_NOTIFY. */
void vq_kick(struct vio_dev *d, struct virtq *q);
/* Raw avail publish/notify for hand-made rings: ring[avail_idx % num] = head, idx++. */
void vq_push_avail(struct virtq *q, u16 head);
void vq_notify(struct vio_dev *d, struct virtq *q);
/* A finished chain: returns its head id (its descriptors go back to the free list) and
 * *len (bytes the device wrote), or -1 if none is ready. No exits. */
int vq_poll(struct virtq *q, u32 *len);
/* vq_poll until one is ready or timeout_ms passes (checks the device status every ~10 ms:
 * VIO_ERR_RESET on NEEDS_RESET/FAILED). Head id, or VIO_ERR_TIMEOUT / VIO_ERR_RESET. */
int vq_wait(struct vio_dev *d, struct virtq *q, u32 *len, u64 timeout_ms);
static inline int vq_pending(const struct virtq *q)
{
    return *(volatile u16 *)&q->used->idx != q->last_used;
}

/* Polls the device status for up to timeout_ms until any bit of mask is set; returns the
 * last status read. */
u32 vio_wait_status(struct vio_dev *d, u32 mask, u64 timeout_ms);

const char *vio_strerror(int err);

#endif
