/*
 * i8042.h - the PS/2 controller, as much of it as a guest needs to reset the machine.
 * A pure state machine: a write of 0xfe to the command port asks for a reset.
 */
#ifndef I8042_H
#define I8042_H
#include <stdint.h>

struct i8042 {
    uint8_t command_byte;
    uint8_t pending_command;   /* a command waiting for its data byte on port 0x60 */
    uint8_t output;            /* byte the guest will read from port 0x60 */
    uint8_t output_full;
};

#define I8042_RESET 1

void i8042_reset(struct i8042 *k);
uint8_t i8042_read(struct i8042 *k, uint16_t port);
int i8042_write(struct i8042 *k, uint16_t port, uint8_t value);  /* I8042_RESET or 0 */
#endif
