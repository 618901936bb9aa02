"""Storage fault injection: power cuts at the N-th write, torn writes, bit flips,
and a RAM block device for littlefs.

FaultFS wraps a file-system adapter (lib/store.py `Files` by default) and
counts every mutating operation: opening a file for writing (create or
truncate), each write() call, rename, remove, mkdir. At operation number
`cut_at` (1-based) power is cut: that operation does not happen — except that
a write may be torn (`torn` = k keeps its first k bytes, at most all but one)
— and `PowerCut` is raised; every later operation raises `PowerCut` too (the
world stopped). Files are closed on the way out, as a reboot would find them.
A fresh adapter (or `FaultFS()` with cut_at=None) on the same files is the
reboot.
"""


class PowerCut(Exception):
    """Raised at the injected power cut and by every operation after it."""


class FaultFS:
    def __init__(self, fs=None, cut_at=None, torn=None):
        if fs is None:
            from store import Files
            fs = Files()
        self.fs = fs
        self.cut_at = cut_at
        self.torn = torn
        self.ops = 0          # mutating operations performed (or attempted)
        self.dead = False

    def _tick(self):
        """Count one mutating operation; True when power is cut at it."""
        if self.dead:
            raise PowerCut("power is off")
        self.ops += 1
        if self.cut_at is not None and self.ops >= self.cut_at:
            self.dead = True
            return True
        return False

    def _alive(self):
        if self.dead:
            raise PowerCut("power is off")

    def open(self, path, mode):
        if "w" in mode or "a" in mode or "+" in mode:
            if self._tick():
                raise PowerCut("cut at open(%s, %s)" % (path, mode))
            return _FaultFile(self, self.fs.open(path, mode))
        self._alive()
        return self.fs.open(path, mode)

    def rename(self, src, dst):
        if self._tick():
            raise PowerCut("cut at rename(%s)" % src)
        self.fs.rename(src, dst)

    def remove(self, path):
        if self._tick():
            raise PowerCut("cut at remove(%s)" % path)
        self.fs.remove(path)

    def mkdir(self, path):
        if self._tick():
            raise PowerCut("cut at mkdir(%s)" % path)
        self.fs.mkdir(path)

    def listdir(self, path):
        self._alive()
        return self.fs.listdir(path)

    def size(self, path):
        self._alive()
        return self.fs.size(path)

    # -- single-event upsets in stored bytes (not counted, power stays on) --
    def flip_bit(self, path, bit):
        """Invert bit `bit` (0 = LSB of byte 0) of a stored file, in place."""
        pos = bit >> 3
        with self.fs.open(path, "r+b") as f:
            f.seek(pos)
            b = f.read(1)
            if len(b) != 1:
                raise ValueError("bit %d beyond the end of %s" % (bit, path))
            f.seek(pos)
            f.write(bytes((b[0] ^ (1 << (bit & 7)),)))


class _FaultFile:
    """A file opened for writing through FaultFS: each write() is one operation."""

    def __init__(self, owner, f):
        self._owner = owner
        self._f = f

    def write(self, data):
        owner = self._owner
        if owner._tick():
            if owner.torn:
                keep = min(owner.torn, len(data) - 1)
                if keep > 0:
                    self._f.write(data[:keep])
            raise PowerCut("cut at write of %d bytes" % len(data))
        return self._f.write(data)

    def read(self, *args):
        self._owner._alive()
        return self._f.read(*args)

    def seek(self, *args):
        return self._f.seek(*args)

    def flush(self):
        self._owner._alive()
        self._f.flush()

    def close(self):
        self._f.close()  # what reached the file stays; nothing more is written

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class RamBlockDevice:
    """A block device in RAM for vfs.VfsLfs2 (extended interface)."""

    def __init__(self, block_size=512, blocks=128):
        self.block_size = block_size
        self.blocks = blocks
        self.data = bytearray(block_size * blocks)

    def readblocks(self, block, buf, offset=0):
        start = block * self.block_size + offset
        buf[:] = self.data[start:start + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        start = block * self.block_size + (offset or 0)
        self.data[start:start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:    # block count
            return self.blocks
        if op == 5:    # block size
            return self.block_size
        if op == 6:    # erase: RAM needs none
            return 0
        return None


def mount_ram_littlefs(mountpoint="/lfs", block_size=512, blocks=128):
    """Format a RAM block device with littlefs v2 and mount it (MicroPython)."""
    import vfs
    bdev = RamBlockDevice(block_size, blocks)
    vfs.VfsLfs2.mkfs(bdev)
    vfs.mount(vfs.VfsLfs2(bdev), mountpoint)
    return bdev
