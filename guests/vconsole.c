/* vconsole - a guest on the virtio-console (hvc0): finds the device, sets up receiveq (0) and
 * transmitq (1), prints "vconsole: ready" on COM1, sends "hvc0: hello from virtio-console\r\n"
 * on hvc0, then echoes every chunk received on hvc0 back on hvc0, forever. Polled: keeps
 * RX_BUFS receive buffers posted; while idle it waits on the idle port (woken by input) between polls and
 * reads the device status about once a second (an exit): NEEDS_RESET/FAILED ends it (exit 1).
 * No virtio-console: "vconsole: no virtio-console device", exit 2. */
#include "hvlib.h"
#include "virtio.h"

#define RX_BUFS 8
#define TX_BUFS 16
#define BUF_SIZE 512

static struct vio_dev con;
static struct virtq rxq, txq;
static struct vio_arena arena;
static u8 *rx_buf[RX_BUFS], *tx_buf[TX_BUFS];
static int rx_of_head[VIO_QUEUE_MAX], tx_of_head[VIO_QUEUE_MAX];
static u8 tx_busy[TX_BUFS];

static void post_rx(int i)
{
    struct vio_buf b = { (u64)(size_t)rx_buf[i], BUF_SIZE, 1 };
    int h = vq_add(&rxq, &b, 1);
    if (h >= 0)
        rx_of_head[h] = i;
}

static void reap_tx(void)
{
    int h;
    while ((h = vq_poll(&txq, NULL)) >= 0)
        tx_busy[tx_of_head[h]] = 0;
}

/* Queues n bytes on transmitq (waits for a free buffer if all are in flight). 0 or -1. */
static int send(const u8 *p, u32 n)
{
    while (n) {
        u32 k = n > BUF_SIZE ? BUF_SIZE : n;
        u64 start = hv_rdtsc();
        int i, h;
        struct vio_buf b;
        for (;;) {
            reap_tx();
            for (i = 0; i < TX_BUFS && tx_busy[i]; i++)
                ;
            if (i < TX_BUFS)
                break;
            if (hv_rdtsc() - start > hv_ms_to_tsc(5000))
                return -1;
            cpu_relax();
        }
        memcpy(tx_buf[i], p, k);
        b = (struct vio_buf){ (u64)(size_t)tx_buf[i], k, 0 };
        h = vq_add(&txq, &b, 1);
        if (h < 0)
            return -1;
        tx_of_head[h] = i;
        tx_busy[i] = 1;
        vq_kick(&con, &txq);
        p += k;
        n -= k;
    }
    return 0;
}

int main(const struct hv_boot_info *bi)
{
    static const char hello[] = "hvc0: hello from virtio-console\r\n";
    int slot = vio_find(VIO_ID_CONSOLE, 0), r, i, h;
    u64 last_check;
    u32 len, s;

    if (slot < 0) {
        hv_printf("vconsole: no virtio-console device\n");
        return 2;
    }
    vio_arena_init(&arena, bi->free_start, bi->free_end);
    if ((r = vio_init(&con, slot, 0)) < 0 ||
        (r = vio_queue_setup(&con, &rxq, 0, 64, &arena)) < 0 ||
        (r = vio_queue_setup(&con, &txq, 1, 64, &arena)) < 0) {
        hv_printf("vconsole: virtio-console setup failed: %s (device status 0x%02x)\n",
                  vio_strerror(r), vio_status(&con));
        return 1;
    }
    for (i = 0; i < RX_BUFS; i++)
        rx_buf[i] = vio_alloc(&arena, BUF_SIZE, 64);
    for (i = 0; i < TX_BUFS; i++)
        tx_buf[i] = vio_alloc(&arena, BUF_SIZE, 64);
    vio_driver_ok(&con);
    for (i = 0; i < RX_BUFS; i++)
        post_rx(i);
    vq_kick(&con, &rxq);
    hv_printf("vconsole: ready\n");
    if (send((const u8 *)hello, sizeof hello - 1) < 0) {
        hv_printf("vconsole: transmit stuck, device status 0x%02x\n", vio_status(&con));
        return 1;
    }

    last_check = hv_rdtsc();
    for (;;) {
        int got = 0;
        while ((h = vq_poll(&rxq, &len)) >= 0) {
            int b = rx_of_head[h];
            got = 1;
            if (len > BUF_SIZE)
                len = BUF_SIZE;
            if (len && send(rx_buf[b], len) < 0) {
                hv_printf("vconsole: transmit stuck, device status 0x%02x\n", vio_status(&con));
                return 1;
            }
            post_rx(b);
        }
        if (got)
            vq_kick(&con, &rxq);
        reap_tx();
        if (hv_rdtsc() - last_check >= hv_ms_to_tsc(1000)) {
            last_check = hv_rdtsc();
            s = vio_status(&con);
            if (s & (VIO_S_NEEDS_RESET | VIO_S_FAILED)) {
                hv_printf("vconsole: device status 0x%02x, stopping\n", s);
                return 1;
            }
        }
        if (!got)
            outl(HV_PORT_IDLE, 50000);   /* idle; the monitor wakes us when input arrives */
    }
}
