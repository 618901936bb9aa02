# Umbra's board support, added to a stock qemu board by emu/boards/*/mpconfigboard.mk.
# The vendored tree (vendor/micropython) is not changed: our header is forced
# into every C file, our C module comes in as a user C module, and the port's
# start-up, stdin, delay, reset and random functions are swapped with --wrap.
UMBRA_BOARD := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

CFLAGS += -include $(UMBRA_BOARD)/umbra_board.h -I$(UMBRA_BOARD)
# cryptolib: axtls's AES alone (no TLS)
CFLAGS += -I$(TOP)/lib/axtls/ssl -I$(TOP)/lib/axtls/crypto -I$(TOP)/extmod/axtls-include
$(BUILD)/extmod/modcryptolib.o: CFLAGS += -include $(UMBRA_BOARD)/umbra_aes.h
# time.gmtime/mktime
SRC_C += shared/timeutils/timeutils.c

MICROPY_VFS_LFS2 = 1
USER_C_MODULES = $(UMBRA_BOARD)/..
# the stock main.c's heap goes unused (ours is sized at boot): keep it small
MICROPY_HEAP_SIZE = 4096
MICROPY_STACK_SIZE = 16384

LDFLAGS += --wrap=main --wrap=exit --wrap=mp_hal_stdin_rx_chr --wrap=mp_hal_stdio_poll \
	--wrap=mp_hal_delay_ms --wrap=mp_hal_get_random

# frozen: the board's start-up always; Umbra's firmware/ and lib/ with UMBRA_FROZEN=1
FROZEN_MANIFEST = $(UMBRA_BOARD)/manifest.py
