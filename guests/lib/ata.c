/* ata.c - ATA PIO, primary master, LBA28, polled; one port access per data word (see ata.h). */
#include "ata.h"

#define TIMEOUT_MS 5000

u8 ata_last_status, ata_last_error;
u64 ata_port_ops;

static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static u8 status(void)
{
    ata_port_ops++;
    return ata_last_status = inb(ATA_STATUS);
}

static void out8(u16 port, u8 v)
{
    ata_port_ops++;
    outb(port, v);
}

/* Waits for !BSY, then for all of `want` (e.g. DRQ). 0, or ATA_ERR_*. */
static int wait_ready(u8 want)
{
    u64 start = hv_rdtsc(), limit = hv_ms_to_tsc(TIMEOUT_MS);
    for (;;) {
        u8 s = status();
        if (s == 0xff)
            return ATA_ERR_NODEV;
        if (!(s & ATA_S_BSY)) {
            if (s & (ATA_S_ERR | ATA_S_DF)) {
                ata_port_ops++;
                ata_last_error = inb(ATA_ERROR);
                return ATA_ERR_DEVICE;
            }
            if ((s & want) == want)
                return 0;
        }
        if (hv_rdtsc() - start >= limit)
            return ATA_ERR_TIMEOUT;
        cpu_relax();
    }
}

static void select_lba(u32 lba, u32 count)
{
    out8(ATA_DRIVE, (u8)(0xE0 | ((lba >> 24) & 0x0F)));
    out8(ATA_COUNT, (u8)count);            /* 256 -> 0 */
    out8(ATA_LBA0, (u8)lba);
    out8(ATA_LBA1, (u8)(lba >> 8));
    out8(ATA_LBA2, (u8)(lba >> 16));
}

static void read_sector(void *buf, int width)
{
    int i;
    if (width == 4) {
        u32 *p = buf;
        for (i = 0; i < ATA_SECTOR / 4; i++)
            p[i] = inl(ATA_DATA);
        ata_port_ops += ATA_SECTOR / 4;
    } else {
        u16 *p = buf;
        for (i = 0; i < ATA_SECTOR / 2; i++)
            p[i] = inw(ATA_DATA);
        ata_port_ops += ATA_SECTOR / 2;
    }
}

static void write_sector(const void *buf, int width)
{
    int i;
    if (width == 4) {
        const u32 *p = buf;
        for (i = 0; i < ATA_SECTOR / 4; i++)
            outl(ATA_DATA, p[i]);
        ata_port_ops += ATA_SECTOR / 4;
    } else {
        const u16 *p = buf;
        for (i = 0; i < ATA_SECTOR / 2; i++)
            outw(ATA_DATA, p[i]);
        ata_port_ops += ATA_SECTOR / 2;
    }
}

int ata_identify(u16 id[256], u32 *sectors)
{
    u8 s;
    int r;

    ata_port_ops++;
    s = inb(ATA_STATUS);
    if (s == 0xff)
        return ATA_ERR_NODEV;
    /* Software reset of the channel, then leave nIEN set: we poll. */
    out8(ATA_ALTSTATUS, ATA_CTL_NIEN | ATA_CTL_SRST);
    hv_sleep_us(10);
    out8(ATA_ALTSTATUS, ATA_CTL_NIEN);
    if ((r = wait_ready(0)) < 0)
        return r;
    out8(ATA_DRIVE, 0xE0);
    if ((r = wait_ready(0)) < 0)
        return r;
    out8(ATA_STATUS, ATA_CMD_IDENTIFY);
    if (status() == 0)
        return ATA_ERR_NODEV;
    if ((r = wait_ready(ATA_S_DRQ)) < 0)
        return r;
    read_sector(id, 2);
    if (sectors)
        *sectors = (u32)id[60] | ((u32)id[61] << 16);
    return 0;
}

/* READ or WRITE SECTORS in runs of up to 256, one data-port access per word or dword. */
static int transfer(u32 lba, u32 count, u8 *p, int width, int write)
{
    int r;

    if ((u64)lba + count > (1ull << 28))
        return ATA_ERR_RANGE;
    while (count) {
        u32 n = count > 256 ? 256 : count, k;
        if ((r = wait_ready(0)) < 0)
            return r;
        select_lba(lba, n);
        out8(ATA_STATUS, write ? ATA_CMD_WRITE : ATA_CMD_READ);
        for (k = 0; k < n; k++) {
            if ((r = wait_ready(ATA_S_DRQ)) < 0)
                return r;
            if (write)
                write_sector(p, width);
            else
                read_sector(p, width);
            p += ATA_SECTOR;
        }
        lba += n;
        count -= n;
    }
    return wait_ready(0);
}

int ata_read(u32 lba, u32 count, void *buf, int width)
{
    return transfer(lba, count, buf, width, 0);
}

int ata_write(u32 lba, u32 count, const void *buf, int width)
{
    return transfer(lba, count, (u8 *)buf, width, 1);
}

int ata_flush(void)
{
    int r;
    if ((r = wait_ready(0)) < 0)
        return r;
    out8(ATA_DRIVE, 0xE0);
    out8(ATA_STATUS, ATA_CMD_FLUSH);
    return wait_ready(0);
}

const char *ata_strerror(int err)
{
    switch (err) {
    case ATA_ERR_NODEV: return "no drive";
    case ATA_ERR_TIMEOUT: return "timeout";
    case ATA_ERR_DEVICE: return "device error";
    case ATA_ERR_RANGE: return "LBA out of range";
    default: return err >= 0 ? "ok" : "error";
    }
}
