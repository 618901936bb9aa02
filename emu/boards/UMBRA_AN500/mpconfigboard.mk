# Umbra on QEMU mps2-an500: the stock board plus our board support
include boards/MPS2_AN500/mpconfigboard.mk
include $(UMBRA_EMU_BOARD_MK)
