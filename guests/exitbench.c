/* exitbench - N one-byte "out %al, %dx" to port P in a tight loop, then debug exit 0.
 * Command line: port=P count=N cpl=0|3 (defaults port=0x80 count=20000 cpl=0).
 * Prints nothing and never touches the UART, so a raw KVM_RUN loop can run it too (it only
 * needs the boot info: magic and command line). Bad arguments: exit status 2. */
#include "hvlib.h"

HV_STAY_AT_CPL0;   /* cpl=0 is the default: it measures the exit path from CPL 0 */

int main(const struct hv_boot_info *bi)
{
    const char *cmd = hv_cmdline(bi);
    int ok1, ok2, ok3;
    u64 port = hv_get_num(cmd, "port", HV_PORT_POST, &ok1);
    u64 count = hv_get_num(cmd, "count", 20000, &ok2);
    u64 cpl = hv_get_num(cmd, "cpl", 0, &ok3);

    if (bi->vcpu_index != 0) {
        hv_enter_user();
        hv_park();
    }
    if (!ok1 || !ok2 || !ok3 || port > 0xffff || (cpl != 0 && cpl != 3))
        return 2;
    if (cpl == 3)
        hv_enter_user();
    if (count) {
        __asm__ volatile("1:\n\t"
                         "outb %%al, %%dx\n\t"
                         "dec %%rcx\n\t"
                         "jnz 1b"
                         : "+c"(count)
                         : "d"((u16)port), "a"(0)
                         : "memory");
    }
    return 0;
}
