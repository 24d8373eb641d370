/*
 * ata.h - ATA PIO driver for the hvtui tiny guests: primary channel (0x1F0-0x1F7, control
 * 0x3F6), master device, LBA28, polled with interrupts masked (nIEN).
 *
 * Every data word moves through the data port with one `in`/`out` per 16-bit word (width 2)
 * or per 32-bit dword (width 4) - deliberately no `rep insw`: on a hypervisor each of those is
 * an exit, which is what the emulated-disk benchmark measures. Status polls are exits too.
 */
#ifndef ATA_H
#define ATA_H

#include "hvlib.h"

#define ATA_DATA      0x1F0
#define ATA_ERROR     0x1F1   /* read: error; write: features */
#define ATA_COUNT     0x1F2
#define ATA_LBA0      0x1F3
#define ATA_LBA1      0x1F4
#define ATA_LBA2      0x1F5
#define ATA_DRIVE     0x1F6
#define ATA_STATUS    0x1F7   /* read: status; write: command */
#define ATA_ALTSTATUS 0x3F6   /* read: alternate status; write: device control */

#define ATA_S_BSY  0x80
#define ATA_S_DRDY 0x40
#define ATA_S_DF   0x20
#define ATA_S_DRQ  0x08
#define ATA_S_ERR  0x01

#define ATA_CTL_NIEN 0x02
#define ATA_CTL_SRST 0x04

#define ATA_CMD_READ     0x20
#define ATA_CMD_WRITE    0x30
#define ATA_CMD_FLUSH    0xE7
#define ATA_CMD_IDENTIFY 0xEC

#define ATA_SECTOR 512

/* Errors (negative returns) */
#define ATA_ERR_NODEV   (-1)  /* status 0x00 or 0xff: nothing on the channel */
#define ATA_ERR_TIMEOUT (-2)  /* BSY or !DRQ for too long */
#define ATA_ERR_DEVICE  (-3)  /* ERR or DF set; ata_last_status/ata_last_error tell */
#define ATA_ERR_RANGE   (-4)  /* beyond LBA28 */

extern u8 ata_last_status, ata_last_error;
extern u64 ata_port_ops;      /* port accesses made so far (each one an exit) */

/* Software reset (SRST), nIEN set, then IDENTIFY DEVICE into id[256].
 * Returns 0 and *sectors (LBA28 count, words 60-61), or ATA_ERR_*. */
int ata_identify(u16 id[256], u32 *sectors);
/* count sectors (any number; split in commands of <= 256) at lba, data port width 2 or 4. */
int ata_read(u32 lba, u32 count, void *buf, int width);
int ata_write(u32 lba, u32 count, const void *buf, int width);
int ata_flush(void);
const char *ata_strerror(int err);

#endif
