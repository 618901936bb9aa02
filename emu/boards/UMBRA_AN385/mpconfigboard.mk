# Umbra on QEMU mps2-an385: the stock board plus our board support
include boards/MPS2_AN385/mpconfigboard.mk
include $(UMBRA_EMU_BOARD_MK)
