/* blkbench - the same disk through virtio-blk (paravirtual) and ATA PIO (emulated): writes,
 * reads back and verifies a pattern through each, cross-checks the two paths on the same
 * blocks, and prints the throughput of each timed phase.
 *
 * Command line (defaults): pv_mib=16 emu_kib=1024 width=4 mode=bench
 *   [cross_kib=64 req_kib=1024 depth=4 seed=N]  (0 for pv_mib/emu_kib/cross_kib skips it)
 *   width = ATA data port width in bytes (2: inw/outw per word, 4: inl/outl per dword);
 *   req_kib = bytes per virtio-blk request, depth = requests in flight.
 * mode=badring kind=loop|oob|idx|long|feat: hands virtio-blk a malformed ring (or an
 *   unoffered feature) and checks that the device fails (NEEDS_RESET / FEATURES_OK refused).
 *   With kind=feat times=N it negotiates badly N times in a row (0: forever, printing a
 *   line every 1000), as a driver looping on a failed negotiation would.
 * mode=rowrite: writes a sector through virtio-blk and through the ATA disk even though
 *   the disk says it is read-only, and prints whether each device refused it.
 *
 * Timed phases are bracketed by 4-byte writes to port 0x524 (phase id, then 0):
 * 1 pv-write, 2 pv-read, 3 emu-write, 4 emu-read; the write phases include the flush.
 * Disk layout (LBA): pv region at 0, emu region right after, cross region after that.
 * Exit: 0 ok; 1 mismatch / device did not fail; 2 no disk or bad arguments; 3 I/O error. */
#include "hvlib.h"
#include "virtio.h"
#include "ata.h"

#define SECTOR 512ull
#define KIB 1024ull
#define MIB (1ull << 20)
#define GOLDEN 0x9E3779B97F4A7C15ull

#define PHASE_PV_WRITE  1
#define PHASE_PV_READ   2
#define PHASE_EMU_WRITE 3
#define PHASE_EMU_READ  4

#define VIRTIO_BLK_T_IN    0
#define VIRTIO_BLK_T_OUT   1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_S_OK    0
#define VIRTIO_BLK_F_RO    (1ull << 5)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)

#define MAX_DEPTH 64
#define IO_TIMEOUT_MS 10000
#define BADRING_WAIT_MS 2000
#define BAD_ADDR 0x7f0000000000ull

struct blk_hdr { u32 type; u32 reserved; u64 sector; };
struct blk_slot {
    struct blk_hdr hdr;
    volatile u8 status;
    u8 busy;
} __attribute__((aligned(32)));

static struct vio_dev blk;
static struct virtq bq;
static struct vio_arena arena;
static struct blk_slot slots[MAX_DEPTH];
static int slot_of_head[VIO_QUEUE_MAX];
static u64 capacity;            /* sectors */
static u64 req_bytes = 1024 * KIB;
static unsigned depth = 4;
static int ata_width = 4;
static u16 ata_id[256];

/* ---- pattern ---- */
static inline u64 pattern(u64 sector, u64 word, u64 seed)
{
    return (sector * GOLDEN) ^ word ^ seed;
}

static void fill(void *buf, u64 lba, u64 nsect, u64 seed)
{
    u64 *p = buf, s, w;
    for (s = 0; s < nsect; s++)
        for (w = 0; w < SECTOR / 8; w++)
            *p++ = pattern(lba + s, w, seed);
}

/* 0 if all good, else prints the mismatch and returns 1. */
static int check(const void *buf, u64 lba, u64 nsect, u64 seed, const char *what)
{
    const u64 *p = buf;
    u64 s, w;
    for (s = 0; s < nsect; s++)
        for (w = 0; w < SECTOR / 8; w++, p++)
            if (*p != pattern(lba + s, w, seed)) {
                hv_printf("blkbench: MISMATCH at sector %llu (%s, word %llu: read 0x%llx, "
                          "wrote 0x%llx)\n", lba + s, what, w, *p, pattern(lba + s, w, seed));
                return 1;
            }
    return 0;
}

/* ---- timing ---- */
static void mark(u32 phase) { outl(HV_PORT_PYDEV, phase); }

static u64 to_us(u64 ticks) { return ticks * 1000 / hv_tsc_khz; }

/* "what N MiB R MiB/s" (in_kib: "what N KiB R MiB/s"); R with one decimal, or three below 10 MiB/s
 * (an emulated disk is slower than 0.1 MiB/s). Integer arithmetic; bytes <= 4 GiB. */
static void print_rate(const char *what, u64 bytes, int in_kib, u64 ticks)
{
    u64 ns = ticks * 1000000ull / hv_tsc_khz, bps, milli;
    char size[32];
    if (!ns)
        ns = 1;
    bps = bytes * 1000000000ull / ns;
    milli = (bps * 1000 + MIB / 2) / MIB;
    if (!in_kib && bytes % MIB == 0)
        hv_snprintf(size, sizeof size, "%llu MiB", bytes / MIB);
    else
        hv_snprintf(size, sizeof size, "%llu KiB", bytes / KIB);
    if (milli >= 10000) {
        u64 tenths = (milli + 50) / 100;
        hv_printf("%s %s %llu.%llu MiB/s\n", what, size, tenths / 10, tenths % 10);
    } else {
        hv_printf("%s %s %llu.%03llu MiB/s\n", what, size, milli / 1000, milli % 1000);
    }
}

/* ---- virtio-blk ---- */
static int blk_setup(u64 want)
{
    int slot = vio_find(VIO_ID_BLOCK, 0), r;
    if (slot < 0)
        return VIO_ERR_NODEV;
    if ((r = vio_init(&blk, slot, want)) < 0)
        return r;
    if ((r = vio_queue_setup(&blk, &bq, 0, VIO_QUEUE_MAX, &arena)) < 0)
        return r;
    vio_driver_ok(&blk);
    capacity = vio_config64(&blk, 0);
    return 0;
}

static void pv_fail(const char *what, int err, int slot)
{
    if (err == VIO_ERR_TIMEOUT || err == VIO_ERR_RESET)
        hv_printf("blkbench: virtio-blk %s: %s, device status 0x%02x\n", what, vio_strerror(err),
                  vio_status(&blk));
    else
        hv_printf("blkbench: virtio-blk %s: request status %u (slot %d)\n", what,
                  slot >= 0 ? slots[slot].status : 0xff, slot);
}

/* Waits for one completion; 0 or -1 (printed). Frees its slot. */
static int pv_reap(const char *what)
{
    u32 len;
    int h = vq_wait(&blk, &bq, &len, IO_TIMEOUT_MS), s;
    if (h < 0) {
        pv_fail(what, h, -1);
        return -1;
    }
    s = slot_of_head[h];
    slots[s].busy = 0;
    if (slots[s].status != VIRTIO_BLK_S_OK) {
        pv_fail(what, 0, s);
        return -1;
    }
    return 0;
}

/* Sequential I/O of bytes at lba through buf: requests of req_bytes, depth of them in flight,
 * every free slot refilled before one notify. 0 or -1 (printed). */
static int pv_io(u32 type, u64 lba, u8 *buf, u64 bytes)
{
    const char *what = type == VIRTIO_BLK_T_OUT ? "write" : "read";
    u64 off = 0;
    unsigned inflight = 0, s;

    while (off < bytes || inflight) {
        int added = 0;
        for (s = 0; s < depth && off < bytes; s++) {
            struct vio_buf b[3];
            u64 n = bytes - off < req_bytes ? bytes - off : req_bytes;
            int h;
            if (slots[s].busy)
                continue;
            slots[s].hdr.type = type;
            slots[s].hdr.reserved = 0;
            slots[s].hdr.sector = lba + off / SECTOR;
            slots[s].status = 0xff;
            b[0] = (struct vio_buf){ (u64)(size_t)&slots[s].hdr, sizeof slots[s].hdr, 0 };
            b[1] = (struct vio_buf){ (u64)(size_t)(buf + off), (u32)n, type == VIRTIO_BLK_T_IN };
            b[2] = (struct vio_buf){ (u64)(size_t)&slots[s].status, 1, 1 };
            h = vq_add(&bq, b, 3);
            if (h < 0)
                break;
            slot_of_head[h] = (int)s;
            slots[s].busy = 1;
            off += n;
            inflight++;
            added++;
        }
        if (added)
            vq_kick(&blk, &bq);
        if (inflight) {
            if (pv_reap(what) < 0)
                return -1;
            inflight--;
            while (vq_pending(&bq) && inflight) {      /* everything else already done */
                if (pv_reap(what) < 0)
                    return -1;
                inflight--;
            }
        }
    }
    return 0;
}

static int pv_flush(void)
{
    struct vio_buf b[2];
    int h;
    if (!(blk.features & VIRTIO_BLK_F_FLUSH))
        return 0;
    slots[0].hdr = (struct blk_hdr){ VIRTIO_BLK_T_FLUSH, 0, 0 };
    slots[0].status = 0xff;
    b[0] = (struct vio_buf){ (u64)(size_t)&slots[0].hdr, sizeof slots[0].hdr, 0 };
    b[1] = (struct vio_buf){ (u64)(size_t)&slots[0].status, 1, 1 };
    h = vq_add(&bq, b, 2);
    if (h < 0)
        return -1;
    slot_of_head[h] = 0;
    slots[0].busy = 1;
    vq_kick(&blk, &bq);
    return pv_reap("flush");
}

/* ---- ATA ---- */
static int emu_fail(const char *what, int r)
{
    hv_printf("blkbench: ata %s: %s (status 0x%02x, error 0x%02x)\n", what, ata_strerror(r),
              ata_last_status, ata_last_error);
    return 3;
}

/* ---- phases ---- */
static int bench(u64 pv_bytes, u64 emu_bytes, u64 cross_bytes,
                 u64 seed)
{
    u64 pv_lba = 0, emu_lba = pv_bytes / SECTOR, x_lba = emu_lba + emu_bytes / SECTOR;
    u64 need = x_lba + cross_bytes / SECTOR, bufsz, t0, t1, tw, us[6] = { 0 }, ops = 0, ops_w = 0;
    u64 nt_w = 0, nt_r = 0;
    u32 ata_sectors = 0;
    u8 *buf;
    int r;

    r = blk_setup(VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
    if (r == VIO_ERR_NODEV) {
        hv_printf("blkbench: no virtio-blk device\n");
        return 2;
    }
    if (r < 0) {
        hv_printf("blkbench: virtio-blk setup failed: %s (device status 0x%02x)\n",
                  vio_strerror(r), vio_status(&blk));
        return 3;
    }
    if (depth > bq.num / 3u)
        depth = bq.num / 3u;
    if (blk.features & VIRTIO_BLK_F_RO) {
        hv_printf("blkbench: the disk is read-only\n");
        return 2;
    }
    if (emu_bytes || cross_bytes) {
        r = ata_identify(ata_id, &ata_sectors);
        if (r < 0) {
            hv_printf("blkbench: no ATA disk: %s (status 0x%02x)\n", ata_strerror(r),
                      ata_last_status);
            return 2;
        }
    }
    hv_printf("blkbench: virtio-blk slot %d, %llu sectors (%llu MiB), flush %s; ata %u sectors, "
              "%d-bit data port; %llu KiB x %u in flight\n", blk.slot, capacity,
              capacity * SECTOR / MIB, blk.features & VIRTIO_BLK_F_FLUSH ? "yes" : "no",
              ata_sectors, ata_width * 8, req_bytes / KIB, depth);
    if (need > capacity) {
        hv_printf("blkbench: disk too small: %llu sectors, need %llu\n", capacity, need);
        return 2;
    }
    if ((emu_bytes || cross_bytes) && need > ata_sectors) {
        hv_printf("blkbench: ATA disk too small: %u sectors, need %llu\n", ata_sectors, need);
        return 2;
    }
    bufsz = pv_bytes > emu_bytes ? pv_bytes : emu_bytes;
    if (cross_bytes > bufsz)
        bufsz = cross_bytes;
    buf = vio_alloc(&arena, bufsz ? bufsz : 4096, 4096);
    if (!buf) {
        hv_printf("blkbench: %llu KiB of buffer do not fit in free RAM (%llu KiB left)\n",
                  bufsz / KIB, (arena.end - arena.next) / KIB);
        return 2;
    }

    /* (a) virtio-blk */
    if (pv_bytes) {
        fill(buf, pv_lba, pv_bytes / SECTOR, seed);
        mark(PHASE_PV_WRITE);
        nt_w = vio_notifies;
        t0 = hv_rdtsc();
        r = pv_io(VIRTIO_BLK_T_OUT, pv_lba, buf, pv_bytes);
        tw = hv_rdtsc();
        if (!r)
            r = pv_flush();
        t1 = hv_rdtsc();
        us[0] = to_us(tw - t0);
        us[1] = to_us(t1 - tw);
        nt_w = vio_notifies - nt_w;
        mark(0);
        if (r)
            return 3;
        print_rate("pv write", pv_bytes, 0, t1 - t0);
        memset(buf, 0xa5, pv_bytes);
        mark(PHASE_PV_READ);
        nt_r = vio_notifies;
        t0 = hv_rdtsc();
        r = pv_io(VIRTIO_BLK_T_IN, pv_lba, buf, pv_bytes);
        t1 = hv_rdtsc();
        mark(0);
        us[2] = to_us(t1 - t0);
        nt_r = vio_notifies - nt_r;
        if (r)
            return 3;
        print_rate("pv read", pv_bytes, 0, t1 - t0);
        if (check(buf, pv_lba, pv_bytes / SECTOR, seed, "pv read"))
            return 1;
    }

    /* (b) ATA PIO */
    if (emu_bytes) {
        u64 s2 = seed ^ 0x656d750000000000ull;
        fill(buf, emu_lba, emu_bytes / SECTOR, s2);
        mark(PHASE_EMU_WRITE);
        ops_w = ata_port_ops;
        t0 = hv_rdtsc();
        r = ata_write((u32)emu_lba, (u32)(emu_bytes / SECTOR), buf, ata_width);
        tw = hv_rdtsc();
        if (!r)
            r = ata_flush();
        t1 = hv_rdtsc();
        us[3] = to_us(tw - t0);
        us[4] = to_us(t1 - tw);
        mark(0);
        ops_w = ata_port_ops - ops_w;
        if (r)
            return emu_fail("write", r);
        print_rate("emu write", emu_bytes, 1, t1 - t0);
        memset(buf, 0xa5, emu_bytes);
        mark(PHASE_EMU_READ);
        t0 = hv_rdtsc();
        ops = ata_port_ops;
        r = ata_read((u32)emu_lba, (u32)(emu_bytes / SECTOR), buf, ata_width);
        t1 = hv_rdtsc();
        mark(0);
        us[5] = to_us(t1 - t0);
        ops = ata_port_ops - ops;
        if (r)
            return emu_fail("read", r);
        print_rate("emu read", emu_bytes, 1, t1 - t0);
        if (check(buf, emu_lba, emu_bytes / SECTOR, s2, "emu read"))
            return 1;
    }

    /* (c) the same blocks both ways: virtio -> ATA, then ATA -> virtio (new data) */
    if (cross_bytes) {
        u64 s3 = seed ^ 0x7876000000000000ull, s4 = seed ^ 0x7861000000000000ull;
        u32 n = (u32)(cross_bytes / SECTOR);
        fill(buf, x_lba, n, s3);
        if (pv_io(VIRTIO_BLK_T_OUT, x_lba, buf, cross_bytes) || pv_flush())
            return 3;
        memset(buf, 0xa5, cross_bytes);
        if ((r = ata_read((u32)x_lba, n, buf, ata_width)) < 0)
            return emu_fail("read", r);
        if (check(buf, x_lba, n, s3, "cross: virtio write, ata read"))
            return 1;
        fill(buf, x_lba, n, s4);
        if ((r = ata_write((u32)x_lba, n, buf, ata_width)) < 0 || (r = ata_flush()) < 0)
            return emu_fail("write", r);
        memset(buf, 0xa5, cross_bytes);
        if (pv_io(VIRTIO_BLK_T_IN, x_lba, buf, cross_bytes))
            return 3;
        if (check(buf, x_lba, n, s4, "cross: ata write, virtio read"))
            return 1;
        hv_printf("cross ok\n");
    }
    /* The time of each part in microseconds, the virtio notifies of each pv phase (ioeventfd:
     * no exit to the monitor) and the ATA port accesses of each emu phase (each an exit). */
    hv_printf("blkbench: us pv-write=%llu pv-flush=%llu pv-read=%llu emu-write=%llu emu-flush=%llu "
              "emu-read=%llu; pv notifies write=%llu read=%llu; ata port I/Os write=%llu "
              "read=%llu\n", us[0], us[1], us[2], us[3], us[4], us[5], nt_w, nt_r, ops_w, ops);
    hv_printf("blkbench: ok\n");
    return 0;
}

/* ---- malformed rings ---- */
static int report_failed(u32 s)
{
    hv_printf("device status 0x%02x\n", s);
    if (s & VIO_S_NEEDS_RESET) {
        hv_printf("device needs reset\n");
        return 0;
    }
    hv_printf("device did not fail\n");
    return 1;
}

static int badring_feat_once(int quiet);

static int badring_feat(u64 times)
{
    u64 n;
    int r = 0;

    for (n = 0; !times || n < times; n++) {
        r = badring_feat_once(n > 0);
        if (r)
            return r;
        if ((n + 1) % 1000 == 0)
            hv_printf("blkbench: %llu bad negotiations refused\n", n + 1);
    }
    return r;
}

static int badring_feat_once(int quiet)
{
    int slot = vio_find(VIO_ID_BLOCK, 0), bit;
    u64 offered;
    u32 s;

    if (slot < 0) {
        hv_printf("blkbench: no virtio-blk device\n");
        return 2;
    }
    blk.slot = slot;
    blk.base = vio_slot_base(slot);
    vio_reset(&blk);
    vio_set_status(&blk, VIO_S_ACKNOWLEDGE);
    vio_set_status(&blk, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER);
    offered = vio_read_features(&blk);
    for (bit = 0; bit < 64 && (offered >> bit) & 1; bit++)
        ;
    if (bit == 64) {
        hv_printf("blkbench: the device offers all 64 feature bits\n");
        return 1;
    }
    if (!quiet)
        hv_printf("blkbench: offered features 0x%llx, asking for bit %d too\n", offered, bit);
    vio_write_features(&blk, (offered & (VIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH)) | (1ull << bit));
    vio_set_status(&blk, VIO_S_ACKNOWLEDGE | VIO_S_DRIVER | VIO_S_FEATURES_OK);
    s = vio_status(&blk);
    if (!quiet)
        hv_printf("device status 0x%02x\n", s);
    if (s & VIO_S_NEEDS_RESET && !quiet)
        hv_printf("device needs reset\n");
    if (!(s & VIO_S_FEATURES_OK)) {
        if (!quiet)
            hv_printf("features refused\n");
        return 0;
    }
    hv_printf("device did not fail\n");
    return 1;
}

static int rowrite(void)
{
    u32 sectors = 0;
    u8 *buf;
    int r, pv_refused, ata_refused;

    r = blk_setup(VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_RO);
    if (r < 0) {
        hv_printf("blkbench: virtio-blk setup failed: %s\n", vio_strerror(r));
        return 3;
    }
    buf = vio_alloc(&arena, 4096, 4096);
    if (!buf)
        return 3;
    memset(buf, 0x5a, 4096);
    hv_printf("rowrite: virtio-blk offers read-only: %s\n", blk.features & VIRTIO_BLK_F_RO ? "yes" : "no");
    pv_refused = pv_io(VIRTIO_BLK_T_OUT, 0, buf, 4096) != 0;
    hv_printf("rowrite: virtio-blk write %s\n", pv_refused ? "refused" : "accepted");
    r = ata_identify(ata_id, &sectors);
    if (r < 0)
        return emu_fail("identify", r);
    r = ata_write(8, 1, buf, ata_width);
    ata_refused = r != 0;
    hv_printf("rowrite: ata write %s (status 0x%02x, error 0x%02x)\n", ata_refused ? "refused" : "accepted",
              ata_last_status, ata_last_error);
    return pv_refused && ata_refused ? 0 : 1;
}

static int badring(const char *kind, u64 times)
{
    static struct blk_hdr hdr;
    static volatile u8 status;
    u8 *data;
    u16 num, i;
    int r;

    if (!hv_strcmp(kind, "feat"))
        return badring_feat(times);
    if (hv_strcmp(kind, "loop") && hv_strcmp(kind, "oob") && hv_strcmp(kind, "idx") &&
        hv_strcmp(kind, "long")) {
        hv_printf("blkbench: unknown kind '%s' (kinds: loop, oob, idx, long, feat)\n", kind);
        return 2;
    }
    r = blk_setup(VIRTIO_BLK_F_FLUSH);
    if (r == VIO_ERR_NODEV) {
        hv_printf("blkbench: no virtio-blk device\n");
        return 2;
    }
    if (r < 0) {
        hv_printf("blkbench: virtio-blk setup failed: %s\n", vio_strerror(r));
        return 3;
    }
    data = vio_alloc(&arena, 4096, 4096);
    num = bq.num;
    hdr = (struct blk_hdr){ VIRTIO_BLK_T_IN, 0, 0 };
    status = 0xff;
    /* A well-formed read of one sector in descriptors 0, 1, 2, then the damage. */
    bq.desc[0] = (struct virtq_desc){ (u64)(size_t)&hdr, sizeof hdr, VIRTQ_DESC_F_NEXT, 1 };
    bq.desc[1] = (struct virtq_desc){ (u64)(size_t)data, 512,
                                      VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2 };
    bq.desc[2] = (struct virtq_desc){ (u64)(size_t)&status, 1, VIRTQ_DESC_F_WRITE, 0 };
    if (!hv_strcmp(kind, "loop")) {
        /* 0 -> 1 -> 2 -> 1 -> 2 ... */
        bq.desc[2].flags = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT;
        bq.desc[2].next = 1;
        hv_printf("blkbench: chain 0 -> 1 -> 2 -> 1 ...\n");
        vq_push_avail(&bq, 0);
    } else if (!hv_strcmp(kind, "oob")) {
        bq.desc[1].addr = BAD_ADDR;
        hv_printf("blkbench: data descriptor at 0x%llx\n", BAD_ADDR);
        vq_push_avail(&bq, 0);
    } else if (!hv_strcmp(kind, "idx")) {
        hv_printf("blkbench: avail ring entry %u (queue size %u)\n", num, num);
        vq_push_avail(&bq, num);
    } else {
        /* long: every descriptor chained 0 -> 1 -> ... -> num-1 -> 0 -> ...: longer than the
         * queue, each link individually valid. */
        for (i = 1; i < num; i++)
            bq.desc[i] = (struct virtq_desc){ (u64)(size_t)data, 512,
                                              VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
                                              (u16)((i + 1) % num) };
        hv_printf("blkbench: chain of %u descriptors, the last one linking to the first\n", num);
        vq_push_avail(&bq, 0);
    }
    vq_notify(&blk, &bq);
    return report_failed(vio_wait_status(&blk, VIO_S_NEEDS_RESET | VIO_S_FAILED, BADRING_WAIT_MS));
}

int main(const struct hv_boot_info *bi)
{
    const char *cl = hv_cmdline(bi);
    char mode[16], kind[16];
    int ok = 1, o;
    u64 pv_mib, emu_kib, cross_kib, width, rk, dp, seed;

    vio_arena_init(&arena, bi->free_start, bi->free_end);
    if (!hv_get_kv(cl, "mode", mode, sizeof mode))
        mode[0] = 0;
    if (!mode[0] || !hv_strcmp(mode, "bench")) {
        pv_mib = hv_get_num(cl, "pv_mib", 16, &o); ok &= o;
        emu_kib = hv_get_num(cl, "emu_kib", 1024, &o); ok &= o;
        cross_kib = hv_get_num(cl, "cross_kib", 64, &o); ok &= o;
        width = hv_get_num(cl, "width", 4, &o); ok &= o;
        rk = hv_get_num(cl, "req_kib", 1024, &o); ok &= o;
        dp = hv_get_num(cl, "depth", 4, &o); ok &= o;
        seed = hv_get_num(cl, "seed", 0x626c6b62656e6368ull, &o); ok &= o;
        if (!ok || (width != 2 && width != 4) || !rk || rk > 4096 || !dp || dp > MAX_DEPTH ||
            pv_mib > 4096 || emu_kib > (1ull << 22) || cross_kib > (1ull << 22)) {
            hv_printf("blkbench: bad arguments '%s' (pv_mib=N emu_kib=N width=2|4 "
                      "cross_kib=N req_kib=1..4096 depth=1..%d seed=N mode=bench|badring)\n",
                      cl, MAX_DEPTH);
            return 2;
        }
        ata_width = (int)width;
        req_bytes = rk * KIB;
        depth = (unsigned)dp;
        return bench(pv_mib * MIB, (emu_kib * KIB) & ~(SECTOR - 1),
                     (cross_kib * KIB) & ~(SECTOR - 1), seed);
    }
    if (!hv_strcmp(mode, "badring")) {
        if (!hv_get_kv(cl, "kind", kind, sizeof kind))
            kind[0] = 0;
        pv_mib = hv_get_num(cl, "times", 1, &o);
        if (!o) {
            hv_printf("blkbench: bad times= in '%s'\n", cl);
            return 2;
        }
        return badring(kind, pv_mib);
    }
    if (!hv_strcmp(mode, "rowrite"))
        return rowrite();
    hv_printf("blkbench: unknown mode '%s' (modes: bench, badring, rowrite)\n", mode);
    return 2;
}
