"""Byte transport for a serial link: a board's `machine.UART`, or a tty /
pseudo-terminal path on the unix port (and CPython). Nothing here blocks for
long, so a cooperative task can poll it between yields.

    port = open_port(spec, baud=115200)
        spec: a machine.UART object (or anything with any/read/write),
              an int UART id (boards), or a device path such as /dev/ttyACM0
              or /dev/pts/3 (unix port / CPython).
    port.read(n)     -> the bytes waiting now, at most n; b"" when none
    port.readinto(buf) -> how many bytes waiting now went into buf (0: none)
    port.write(data) -> how many bytes were accepted now (0..len(data))
    port.close()

An OSError from read or write means the port is gone (hang-up, unplugged):
close it and open it again later.

Unix port note: MicroPython's FileIO.read(n)/readinto() keep reading until
n bytes arrived, so on a tty they would block. Setting the tty raw with
VMIN=0, VTIME=0 makes read(2) return what is waiting (0 bytes = nothing),
which ends that loop at once; select.poll tells readiness and hang-ups.
"""
import select

try:
    import termios
except ImportError:          # boards: UART only
    termios = None

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

WRITE_CHUNK = const(256)     # a pty that polls writable has room for this much
_VTIME = const(5)            # indices into termios' cc list (Linux)
_VMIN = const(6)
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_POLL_FAIL = select.POLLERR | select.POLLHUP


def open_port(spec, baud=115200):
    if hasattr(spec, "write") and hasattr(spec, "read"):
        return UartPort(spec)
    if isinstance(spec, int):
        import machine
        return UartPort(machine.UART(spec, baudrate=baud, timeout=0))
    return TtyPort(spec, baud)


def set_raw(fd, baud=None):
    """Raw tty (no echo, no CR/LF mapping, 8 bits) whose read() never waits."""
    try:
        termios.setraw(fd)               # MicroPython
    except AttributeError:
        import tty                       # CPython
        tty.setraw(fd)
    attr = termios.tcgetattr(fd)
    cc = list(attr[6])
    cc[_VMIN] = 0
    cc[_VTIME] = 0
    attr[6] = cc
    speed = getattr(termios, "B%d" % baud, None) if baud else None
    if speed is not None:
        attr[4] = speed
        attr[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attr)


class TtyPort:
    def __init__(self, path, baud=115200):
        self.path = path
        self.f = open(path, "r+b", buffering=0)
        try:
            set_raw(self.f.fileno(), baud)
            self.can_in = select.poll()
            self.can_in.register(self.f, _POLLIN)
            self.can_out = select.poll()
            self.can_out.register(self.f, _POLLOUT)
        except Exception:
            self.f.close()
            raise

    def read(self, n=256):
        ev = self.can_in.poll(0)
        if not ev:
            return b""
        if ev[0][1] & _POLL_FAIL and not ev[0][1] & _POLLIN:
            raise OSError(5, "port hung up")   # EIO, as read(2) reports it
        return self.f.read(n) or b""

    def readinto(self, buf):
        """What is waiting, into buf (at most len(buf)); how many bytes (0: none)."""
        ev = self.can_in.poll(0)
        if not ev:
            return 0
        if ev[0][1] & _POLL_FAIL and not ev[0][1] & _POLLIN:
            raise OSError(5, "port hung up")
        return self.f.readinto(buf) or 0

    def write(self, data):
        sent = 0
        n = len(data)
        while sent < n:
            ev = self.can_out.poll(0)
            if not ev:
                break
            if ev[0][1] & _POLL_FAIL:
                raise OSError(5, "port hung up")
            chunk = data[sent:sent + WRITE_CHUNK]
            self.f.write(chunk)
            sent += len(chunk)
        return sent

    def close(self):
        try:
            self.f.close()
        except OSError:
            pass


class UartPort:
    """machine.UART: any() says how much is waiting; write() takes what fits."""

    def __init__(self, uart):
        self.path = "uart"
        self.uart = uart

    def read(self, n=256):
        waiting = self.uart.any()
        if not waiting:
            return b""
        return self.uart.read(min(waiting, n)) or b""

    def readinto(self, buf):
        waiting = self.uart.any()
        if not waiting:
            return 0
        if waiting < len(buf):
            buf = memoryview(buf)[:waiting]
        return self.uart.readinto(buf) or 0

    def write(self, data):
        return self.uart.write(data) or 0

    def close(self):
        deinit = getattr(self.uart, "deinit", None)
        if deinit:
            deinit()
