/* virtio.c - virtio-mmio v2 transport and split virtqueues, polled (see virtio.h). */
#include "virtio.h"

u64 vio_notifies;

void vio_arena_init(struct vio_arena *a, u64 start, u64 end)
{
    a->next = start;
    a->end = end;
}

void *vio_alloc(struct vio_arena *a, u64 size, u64 align)
{
    u64 p = (a->next + align - 1) & ~(align - 1);
    if (p > a->end || size > a->end - p)
        return NULL;
    a->next = p + size;
    memset((void *)(size_t)p, 0, size);
    return (void *)(size_t)p;
}

u64 vio_slot_base(int slot)
{
    return VIO_MMIO_BASE + (u64)slot * VIO_MMIO_STRIDE;
}

u32 vio_slot_id(int slot)
{
    struct vio_dev d = { .base = vio_slot_base(slot) };
    if (vio_read(&d, VIO_R_MAGIC) != VIO_MAGIC || vio_read(&d, VIO_R_VERSION) != 2)
        return 0xffffffffu;
    return vio_read(&d, VIO_R_DEVICE_ID);
}

int vio_find(u32 device_id, int from)
{
    int i;
    for (i = from < 0 ? 0 : from; i < VIO_SLOTS; i++)
        if (vio_slot_id(i) == device_id)
            return i;
    return -1;
}

void vio_reset(struct vio_dev *d)
{
    vio_set_status(d, 0);
    /* The reset is done when the status reads back 0 (§4.2.2.1); ours is synchronous. */
    for (int i = 0; i < 1000 && vio_status(d) != 0; i++)
        cpu_relax();
}

u64 vio_read_features(struct vio_dev *d)
{
    u64 f;
    vio_write(d, VIO_R_DEV_FEAT_SEL, 0);
    f = vio_read(d, VIO_R_DEV_FEATURES);
    vio_write(d, VIO_R_DEV_FEAT_SEL, 1);
    f |= (u64)vio_read(d, VIO_R_DEV_FEATURES) << 32;
    return f;
}

void vio_write_features(struct vio_dev *d, u64 f)
{
    vio_write(d, VIO_R_DRV_FEAT_SEL, 0);
    vio_write(d, VIO_R_DRV_FEATURES, (u32)f);
    vio_write(d, VIO_R_DRV_FEAT_SEL, 1);
    vio_write(d, VIO_R_DRV_FEATURES, (u32)(f >> 32));
}

int vio_init(struct vio_dev *d, int slot, u64 want)
{
    memset(d, 0, sizeof *d);
    d->slot = slot;
    d->base = vio_slot_base(slot);
    if (slot < 0 || slot >= VIO_SLOTS || vio_read(d, VIO_R_MAGIC) != VIO_MAGIC ||
        vio_read(d, VIO_R_VERSION) != 2)
        return VIO_ERR_NODEV;
    d->device_id = vio_read(d, VIO_R_DEVICE_ID);
    if (d->device_id == VIO_ID_NONE)
        return VIO_ERR_NODEV;
    vio_reset(d);
    vio_set_status(d, VIO_S_ACKNOWLEDGE);
    vio_set_status(d, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER);
    d->dev_features = vio_read_features(d);
    if (!(d->dev_features & VIO_F_VERSION_1)) {
        vio_set_status(d, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER | VIO_S_FAILED);
        return VIO_ERR_FEATURES;
    }
    d->features = d->dev_features & (want | VIO_F_VERSION_1);
    vio_write_features(d, d->features);
    vio_set_status(d, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER | VIO_S_FEATURES_OK);
    if (!(vio_status(d) & VIO_S_FEATURES_OK)) {
        vio_set_status(d, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER | VIO_S_FAILED);
        return VIO_ERR_FEATURES;
    }
    return 0;
}

int vio_queue_setup(struct vio_dev *d, struct virtq *q, u16 qi, u16 num, struct vio_arena *a)
{
    u32 max;
    u64 desc, avail, used;
    u16 i;

    memset(q, 0, sizeof *q);
    vio_write(d, VIO_R_QUEUE_SEL, qi);
    if (vio_read(d, VIO_R_QUEUE_READY) != 0)
        return VIO_ERR_QUEUE;
    max = vio_read(d, VIO_R_QUEUE_NUM_MAX);
    if (max == 0)
        return VIO_ERR_QUEUE;
    if (num > VIO_QUEUE_MAX)
        num = VIO_QUEUE_MAX;
    while (num > max)
        num >>= 1;
    if (num == 0)
        return VIO_ERR_QUEUE;
    /* Each part on its own page: desc 16*N (align 16), avail 6+2N (2), used 6+8N (4). */
    q->desc = vio_alloc(a, 16ull * num, 4096);
    q->avail = vio_alloc(a, 6 + 2ull * num, 4096);
    q->used = vio_alloc(a, 6 + 8ull * num, 4096);
    if (!q->desc || !q->avail || !q->used)
        return VIO_ERR_QUEUE;
    q->index = qi;
    q->num = num;
    q->num_free = num;
    q->free_head = 0;
    for (i = 0; i < num; i++)
        q->desc[i].next = (u16)(i + 1 < num ? i + 1 : 0);
    q->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;   /* we poll */

    desc = (u64)(size_t)q->desc;
    avail = (u64)(size_t)q->avail;
    used = (u64)(size_t)q->used;
    vio_write(d, VIO_R_QUEUE_NUM, num);
    vio_write(d, VIO_R_QUEUE_DESC_LO, (u32)desc);
    vio_write(d, VIO_R_QUEUE_DESC_HI, (u32)(desc >> 32));
    vio_write(d, VIO_R_QUEUE_DRV_LO, (u32)avail);
    vio_write(d, VIO_R_QUEUE_DRV_HI, (u32)(avail >> 32));
    vio_write(d, VIO_R_QUEUE_DEV_LO, (u32)used);
    vio_write(d, VIO_R_QUEUE_DEV_HI, (u32)(used >> 32));
    vio_mb();
    vio_write(d, VIO_R_QUEUE_READY, 1);
    return 0;
}

void vio_driver_ok(struct vio_dev *d)
{
    vio_mb();
    vio_set_status(d, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER | VIO_S_FEATURES_OK | VIO_S_DRIVER_OK);
}

u32 vio_config32(struct vio_dev *d, u32 off)
{
    return vio_read(d, VIO_R_CONFIG + off);
}

u64 vio_config64(struct vio_dev *d, u32 off)
{
    u32 gen, lo, hi;
    int tries = 0;
    do {
        gen = vio_read(d, VIO_R_CONFIG_GEN);
        lo = vio_read(d, VIO_R_CONFIG + off);
        hi = vio_read(d, VIO_R_CONFIG + off + 4);
    } while (vio_read(d, VIO_R_CONFIG_GEN) != gen && ++tries < 100);
    return ((u64)hi << 32) | lo;
}

int vq_add(struct virtq *q, const struct vio_buf *bufs, int n)
{
    u16 head, i, prev = 0;
    int k;

    if (n <= 0 || n > q->num_free)
        return VIO_ERR_FULL;
    head = i = q->free_head;
    for (k = 0; k < n; k++) {
        volatile struct virtq_desc *dsc = &q->desc[i];
        dsc->addr = bufs[k].addr;
        dsc->len = bufs[k].len;
        dsc->flags = (u16)((bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
                           (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        prev = i;
        i = dsc->next;          /* free list link: also the chain link we keep */
    }
    q->free_head = i;
    q->num_free = (u16)(q->num_free - n);
    q->desc[prev].next = 0;
    q->chain_len[head] = (u16)n;
    q->avail->ring[q->avail_idx % q->num] = head;
    q->avail_idx++;
    return head;
}

void vq_push_avail(struct virtq *q, u16 head)
{
    q->avail->ring[q->avail_idx % q->num] = head;
    q->avail_idx++;
}

void vq_notify(struct vio_dev *d, struct virtq *q)
{
    vio_mb();
    q->avail->idx = q->avail_idx;
    vio_mb();
    vio_notifies++;
    vio_write(d, VIO_R_QUEUE_NOTIFY, q->index);
}

void vq_kick(struct vio_dev *d, struct virtq *q)
{
    vio_mb();
    q->avail->idx = q->avail_idx;
    vio_mb();
    if (!(q->used->flags & VIRTQ_USED_F_NO_NOTIFY)) {
        vio_notifies++;
        vio_write(d, VIO_R_QUEUE_NOTIFY, q->index);
    }
}

int vq_poll(struct virtq *q, u32 *len)
{
    u16 used_idx = *(volatile u16 *)&q->used->idx, head, n, i;
    volatile struct virtq_used_elem *e;

    if (used_idx == q->last_used)
        return -1;
    vio_mb();                   /* read the element after seeing the index */
    e = &q->used->ring[q->last_used % q->num];
    head = (u16)e->id;
    if (len)
        *len = e->len;
    q->last_used++;
    if (head >= q->num)
        return -1;
    /* Give the chain back: walk its chain_len descriptors, link the tail to the free list. */
    n = q->chain_len[head] ? q->chain_len[head] : 1;
    i = head;
    while (--n)
        i = q->desc[i].next;
    q->desc[i].next = q->free_head;
    q->free_head = head;
    q->num_free = (u16)(q->num_free + (q->chain_len[head] ? q->chain_len[head] : 1));
    q->chain_len[head] = 0;
    return head;
}

int vq_wait(struct vio_dev *d, struct virtq *q, u32 *len, u64 timeout_ms)
{
    u64 start = hv_rdtsc(), last = start, now;
    u64 limit = hv_ms_to_tsc(timeout_ms), check = hv_ms_to_tsc(10);
    int h;

    for (;;) {
        if ((h = vq_poll(q, len)) >= 0)
            return h;
        now = hv_rdtsc();
        if (now - last >= check) {
            last = now;
            if (vio_status(d) & (VIO_S_NEEDS_RESET | VIO_S_FAILED))
                return VIO_ERR_RESET;
        }
        if (now - start >= limit)
            return VIO_ERR_TIMEOUT;
        cpu_relax();
    }
}

u32 vio_wait_status(struct vio_dev *d, u32 mask, u64 timeout_ms)
{
    u64 start = hv_rdtsc(), limit = hv_ms_to_tsc(timeout_ms);
    u32 s;
    for (;;) {
        s = vio_status(d);
        if ((s & mask) || hv_rdtsc() - start >= limit)
            return s;
        hv_sleep_us(500);
    }
}

const char *vio_strerror(int err)
{
    switch (err) {
    case VIO_ERR_NODEV: return "no such device";
    case VIO_ERR_FEATURES: return "feature negotiation failed";
    case VIO_ERR_QUEUE: return "queue setup failed";
    case VIO_ERR_FULL: return "queue full";
    case VIO_ERR_TIMEOUT: return "timeout";
    case VIO_ERR_RESET: return "device needs reset";
    default: return err >= 0 ? "ok" : "error";
    }
}
