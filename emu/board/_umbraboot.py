# Run by the firmware at every start (emu/board/umbra_main.c), frozen into
# every image: the disk at /, a littlefs2 file system on the board's flash
# (a host file the emulator opens through semihosting: umbra-disk.img in
# its working directory). Formatted when it holds none yet.
import vfs
import umbraboard

BLOCK = 4096


class Disk:
    def __init__(self, handle, blocks):
        self.h = handle
        self.blocks = blocks

    def readblocks(self, n, buf, off=0):
        umbraboard.readinto(self.h, n * BLOCK + off, buf)

    def writeblocks(self, n, buf, off=0):
        umbraboard.write(self.h, n * BLOCK + off, buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.blocks
        if op == 5:
            return BLOCK
        return 0  # init, deinit, sync, erase (a file needs no erase)


def _mount():
    try:
        h = umbraboard.open("umbra-disk.img", 3)
    except OSError:
        print("umbra: no disk image (umbra-disk.img): no file system")
        return
    disk = Disk(h, umbraboard.size(h) // BLOCK)
    try:
        vfs.mount(vfs.VfsLfs2(disk), "/")
    except OSError:
        vfs.VfsLfs2.mkfs(disk)
        vfs.mount(vfs.VfsLfs2(disk), "/")
    import os
    import sys
    try:
        os.mkdir("/lib")
    except OSError:
        pass
    sys.path.append("/lib")


_mount()
del _mount
