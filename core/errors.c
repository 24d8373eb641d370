/*
 * errors.c - how the core reports failure: -errno plus the name of the operation,
 * kept per thread for hv_last_op().
 */
#include "internal.h"
#include <errno.h>
#include <sys/ioctl.h>
#include <time.h>

static __thread const char *last_op = "";

const char *hv_last_op(void)
{
    return last_op;
}

int hv_fail_errno(const char *op, int err)
{
    last_op = op;
    return -err;
}

int hv_fail(const char *op)
{
    return hv_fail_errno(op, errno ? errno : EIO);
}

int hv_xioctl(int fd, unsigned long request, void *arg, const char *op)
{
    int r;
    do {
        r = ioctl(fd, request, arg);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? hv_fail(op) : r;
}

uint64_t hv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
