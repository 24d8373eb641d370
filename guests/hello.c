/* hello - one banner line, then exit status 0. Other vCPUs spin at CPL 3. */
#include "hvlib.h"

int main(const struct hv_boot_info *bi)
{
    hv_printf("Hello from hvtui! vcpu %u/%u, %llu MiB RAM\n", bi->vcpu_index, bi->vcpu_count,
              bi->ram_size >> 20);
    return 0;
}
