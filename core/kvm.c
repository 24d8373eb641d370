/*
 * kvm.c - the KVM system: opening /dev/kvm, checking the API version and every
 * capability the monitor relies on, and system-wide queries.
 */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int hv_kvm_open(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? hv_fail("open /dev/kvm") : fd;
}

static const struct {
    long cap;
    const char *name;
} required_caps[] = {
    { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
    { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
    { KVM_CAP_PIT2, "KVM_CAP_PIT2" },
    { KVM_CAP_PIT_STATE2, "KVM_CAP_PIT_STATE2" },
    { KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
    { KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
    { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
    { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
    { KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS" },
    { KVM_CAP_XSAVE, "KVM_CAP_XSAVE" },
    { KVM_CAP_XCRS, "KVM_CAP_XCRS" },
    { KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK" },
    { KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ" },
    { KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
    { KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
    { KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS" },
};

int hv_kvm_check(int kvm_fd, char *missing, size_t missing_len)
{
    int version = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
    if (version < 0)
        return hv_fail("KVM_GET_API_VERSION");
    if (version != KVM_API_VERSION) {
        snprintf(missing, missing_len, "KVM API version %d (need %d)", version, KVM_API_VERSION);
        return hv_fail_errno("KVM_GET_API_VERSION", ENOTSUP);
    }
    for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
        if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
            snprintf(missing, missing_len, "%s", required_caps[i].name);
            return hv_fail_errno("KVM_CHECK_EXTENSION", ENOTSUP);
        }
    }
    return 0;
}

int hv_kvm_check_extension(int kvm_fd, long cap)
{
    return hv_xioctl(kvm_fd, KVM_CHECK_EXTENSION, (void *)cap, "KVM_CHECK_EXTENSION");
}

int hv_kvm_max_vcpus(int kvm_fd)
{
    int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0)
        n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    if (n <= 0)
        n = 4;   /* the KVM API's documented floor when neither cap answers */
    return n;
}

int hv_kvm_vcpu_mmap_size(int kvm_fd)
{
    return hv_xioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL, "KVM_GET_VCPU_MMAP_SIZE");
}

int hv_kvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 *cpuid)
{
    return hv_xioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
}

int hv_kvm_get_msr_index_list(int kvm_fd, struct kvm_msr_list *list)
{
    return hv_xioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list, "KVM_GET_MSR_INDEX_LIST");
}

int hv_xsave_size(int kvm_fd)
{
    int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return n > (int)sizeof(struct kvm_xsave) ? n : (int)sizeof(struct kvm_xsave);
}

int hv_kvm_is_pvm(void)
{
    return access("/sys/module/kvm_pvm", F_OK) == 0;
}
