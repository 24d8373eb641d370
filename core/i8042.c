/* i8042.c - the PS/2 controller state machine (see i8042.h). */
#include "i8042.h"

#define STATUS_OBF   0x01
#define STATUS_SYS   0x04
#define CMD_READ_CB  0x20
#define CMD_WRITE_CB 0x60
#define CMD_SELFTEST 0xaa
#define CMD_RESET    0xfe

void i8042_reset(struct i8042 *k)
{
    k->command_byte = 0x45;
    k->pending_command = 0;
    k->output = 0;
    k->output_full = 0;
}

uint8_t i8042_read(struct i8042 *k, uint16_t port)
{
    if (port == 0x64)
        return (uint8_t)(STATUS_SYS | (k->output_full ? STATUS_OBF : 0));
    k->output_full = 0;
    return k->output;
}

static void reply(struct i8042 *k, uint8_t byte)
{
    k->output = byte;
    k->output_full = 1;
}

int i8042_write(struct i8042 *k, uint16_t port, uint8_t value)
{
    if (port == 0x60) {
        if (k->pending_command == CMD_WRITE_CB)
            k->command_byte = value;
        k->pending_command = 0;
        return 0;
    }
    switch (value) {
    case CMD_RESET:
        return I8042_RESET;
    case CMD_READ_CB:
        reply(k, k->command_byte);
        return 0;
    case CMD_SELFTEST:
        reply(k, 0x55);
        return 0;
    case CMD_WRITE_CB:
        k->pending_command = value;
        return 0;
    default:
        return 0;
    }
}
