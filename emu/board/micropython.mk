# Umbra's board support as a MicroPython user C module (USER_C_MODULES).
UMBRA_BOARD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(UMBRA_BOARD_DIR)/umbra_main.c
SRC_USERMOD_LIB_C += $(UMBRA_BOARD_DIR)/umbra_aes.c
