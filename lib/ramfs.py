"""A filesystem in RAM, for boards and emulators that have no writable one
(MicroPython's qemu port: no flash filesystem at all).

    import ramfs
    ramfs.mount("/ram", 96 * 1024)   # format, mount, chdir, put /ram/lib on sys.path

Everything is lost at reset: this is for smoke tests and demos, not flight.
Uses littlefs v2 when the firmware has it (vfs.VfsLfs2), else FAT (VfsFat);
a firmware with neither raises OSError naming the build option to turn on.
"""
import os
import sys

try:
    import vfs
except ImportError:  # older firmware: the VFS classes live in os
    vfs = os

BLOCK_SIZE = 512
MIN_BLOCKS = 16  # littlefs needs a few metadata blocks even when empty


class RamBlockDevice:
    """A block device in RAM (MicroPython's extended block protocol)."""

    def __init__(self, blocks, block_size=BLOCK_SIZE):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(blocks * block_size)

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        start = block * self.block_size + (offset or 0)
        self.data[start:start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return self.block_size
        if op == 6:  # erase: nothing to do in RAM
            return 0
        return None


def filesystem_class():
    """The VFS class this firmware can format a RAM disk with, or None."""
    for name in ("VfsLfs2", "VfsFat"):
        cls = getattr(vfs, name, None)
        if cls is not None:
            return cls
    return None


def mount(mountpoint="/ram", size_bytes=64 * 1024, chdir=True):
    """Format a RAM disk of size_bytes, mount it; return the block device.

    With chdir, the RAM disk becomes the working directory (so relative paths,
    which `umbra deploy` uses, land in it) and <mountpoint>/lib goes on
    sys.path, as /lib is on a board."""
    cls = filesystem_class()
    if cls is None:
        raise OSError("no littlefs or FAT in this firmware: rebuild it with "
                      "MICROPY_VFS_LFS2=1 (qemu port: make MICROPY_VFS_LFS2=1)")
    blocks = max(MIN_BLOCKS, (size_bytes + BLOCK_SIZE - 1) // BLOCK_SIZE)
    bdev = RamBlockDevice(blocks)
    cls.mkfs(bdev)
    vfs.mount(cls(bdev), mountpoint)
    if chdir:
        os.chdir(mountpoint)
        lib = mountpoint.rstrip("/") + "/lib"
        try:
            os.mkdir(lib)
        except OSError:
            pass
        if lib not in sys.path:
            sys.path.insert(1, lib)
    return bdev
