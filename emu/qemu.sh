#!/bin/sh
# Boot MicroPython's qemu port (mps2-an385, Cortex-M3) with its UART on a pty;
# QEMU prints "char device redirected to /dev/pts/N". Then, in another shell:
#   .venv/bin/python -m tools.emu --attach /dev/pts/N --ramfs-kb 96
# (`make emu FIRMWARE=… EMULATOR=qemu` does both steps and stops QEMU after.)
# Stop QEMU with Ctrl-C, or `import machine; machine.reset()` on the board.
set -eu
FIRMWARE=${1:?usage: emu/qemu.sh path/to/firmware.elf}
exec qemu-system-arm -machine mps2-an385 -nographic -monitor null -semihosting \
    -serial pty -kernel "$FIRMWARE"
