// Umbra's board support for MicroPython's qemu port (mps2-an500, mps2-an385):
// what a flight board has and the stock port lacks. Forced into every C file
// of the build (-include, emu/board/board.mk), so the vendored tree stays as
// it is. Only macros and prototypes here.
#ifndef UMBRA_BOARD_H
#define UMBRA_BOARD_H

#include <stdint.h>

// time.gmtime/localtime/mktime, time.time/time_ns (a real-time clock that
// counts from the port's epoch, 2000-01-01, at power-on: never set)
#define MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME (1)
#define MICROPY_PY_TIME_TIME_TIME_NS (1)
#define MICROPY_PY_TIME_INCLUDEFILE "umbra_time.c"

// os.urandom (mp_hal_get_random, seeded per power-on and per reset)
#define MICROPY_PY_OS_URANDOM (1)

// machine.UART on the spare UARTs (1..4): non-blocking reads, select.poll
#define MICROPY_PY_MACHINE_UART (1)
#define MICROPY_PY_MACHINE_UART_INCLUDEFILE "umbra_uart.c"

// cryptolib (AES) from axtls's aes.c alone, without TLS
#define MICROPY_PY_CRYPTOLIB (1)
#define MICROPY_SSL_AXTLS (1)

// Ctrl-C on the REPL UART interrupts running code, sleeps included
#define MICROPY_VM_HOOK_LOOP umbra_vm_hook();
#define MICROPY_VM_HOOK_RETURN umbra_vm_hook();

void umbra_vm_hook(void);
uint64_t mp_hal_time_ns(void);
void umbra_rtc_get(uint32_t *seconds_since_2000, uint32_t *ms);

#endif
