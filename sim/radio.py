"""A radio behind the serial line, in simulated time: the spacecraft's
link carries `bits_per_s` (bus `radio_bps`, 8N1: ten bits a byte) each way,
so what a pass can carry is what a real radio of that rate carries.

    port = RadioPort(serialport.open_port(path), clock, 9600)

Only the hardware is modelled: the agent's SerialLink (firmware/seriallink.py)
writes and reads this port as it would a UART whose modem takes bytes at
the radio's rate. write() takes a few bytes at a time, no more than the air
has carried since the last write; readinto() hands over the bytes the line
delivered only as the air would have carried them, starting once the
request is through the air (the ground cannot answer what it has not
heard). Waiting takes simulated time: the link yields a short sleep between
tries (sim/node.py builds it so), the node's clock jumps to it.

The ground answers at once in simulated time: once a frame is through the
air and nothing has come back, readinto waits for the line in real time (at
most GROUND_WAIT_MS) instead of returning nothing. Without that, the real
bridge's and Console's milliseconds would turn into simulated seconds (each
empty poll moves the clock by the link's pause), and what a pass carries
would depend on the host's load, not on the radio.
"""

CHUNK = 64            # bytes a write takes at most (a modem's buffer)
GROUND_WAIT_MS = 1000  # real time an answer may take (once a frame: a lost one costs it once)


class RadioPort:
    def __init__(self, port, clock, bits_per_s):
        if not bits_per_s or bits_per_s <= 0:
            raise ValueError("radio_bps must be positive")
        self.port = port
        self.clock = clock
        self.us_per_byte = 10000000 // int(bits_per_s)
        self.tx_free_us = 0     # when the transmitter is done with what it was given
        self.framed = 0         # bytes of the frame being sent, before its delimiter
        self.due = False        # a frame went out and nothing has come back since
        self.rx = bytearray()   # arrived on the line, not yet carried by the air
        self.rx_us = 0          # what the air has carried of rx, up to this time
        self.buf = bytearray(256)
        self.sent = 0           # bytes carried each way (the node's summary)
        self.received = 0

    def _now_us(self):
        return self.clock.now_ms() * 1000

    def write(self, data):
        now = self._now_us()
        if self.tx_free_us > now:
            return 0  # still sending the last chunk: the link tries again
        k = min(len(data), CHUNK)
        n = self.port.write(data[:k]) or 0
        for i in range(n):
            if data[i] == 0:
                if self.framed:
                    self.due = True  # a whole frame: the ground will answer it
                self.framed = 0
            else:
                self.framed += 1
        self.tx_free_us = now + n * self.us_per_byte
        self.sent += n
        return n

    def readinto(self, buf):
        now = self._now_us()
        if self.due and not self.rx and now >= self.tx_free_us:
            wait = getattr(self.port, "can_in", None)  # lib/serialport.TtyPort's poll
            if wait is not None:
                wait.poll(GROUND_WAIT_MS)
            self.due = False  # once a frame: no answer by then, and it is lost (the link retries)
        n = self.port.readinto(self.buf)
        if n:
            if not self.rx:  # the line was idle: these start arriving now, after the request
                self.rx_us = max(now, self.tx_free_us)
            self.rx += self.buf[:n]
        if not self.rx:
            return 0
        k = min(len(self.rx), len(buf), (now - self.rx_us) // self.us_per_byte)
        if k <= 0:
            return 0
        buf[:k] = self.rx[:k]
        self.rx = self.rx[k:]
        self.rx_us += k * self.us_per_byte
        self.received += k
        return k

    def read(self, n=256):
        b = bytearray(n)
        k = self.readinto(b)
        return bytes(b[:k])

    def close(self):
        self.port.close()
