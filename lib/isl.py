"""The inter-satellite link adapter (docs/fleet.md "The ISL adapter"): what a
board's ISL radio driver implements, and what the simulated network
(sim/islnet.py) implements in simulation. The firmware sees only this.

A port is any object with:

    send(dest, data) -> msg_id (int), or None when no route to `dest` exists now
    status(msg_id)   -> SENDING | DELIVERED | LOST (a message whose route broke
                        in flight is lost; unknown ids are LOST)
    recv()           -> (src, data) of the next message that has arrived, or None
    link(dest)       -> None when `dest` cannot be reached now, else
                        {"hops", "latency_ms", "bandwidth_mbps", "quality"}, and
                        where the driver knows them "route" (the satellites, this
                        one first) and "per_hop" ([latency_ms, quality] of each hop)
    neighbours()     -> [satellite ids with a direct link now]

`data` is bytes or str. Times are the port's own; nothing here keeps a float
absolute time.

Sender keeps messages until they are delivered and sends again what was
lost or had no route, at most every `retry_ms`: the retry a lost message
needs, written once for every port.
"""
SENDING = "sending"
DELIVERED = "delivered"
LOST = "lost"


class Sender:
    """Messages to other satellites, retried until delivered.

        s = Sender(port, clock, retry_ms=10000)
        s.send("99904", b"...")      # queued; sent now if a route exists
        s.tick()                     # call from a task: resends what needs it
        s.pending() -> messages not yet delivered
    """

    def __init__(self, port, clock, retry_ms=10000, max_queue=32):
        self.port = port
        self.clock = clock
        self.retry_ms = retry_ms
        self.max_queue = max_queue
        self.queue = []          # [dest, data, msg_id or None, last try ms, tries]
        self.delivered = 0
        self.retries = 0

    def send(self, dest, data):
        """Queue a message; False when the queue is full (nothing queued)."""
        if len(self.queue) >= self.max_queue:
            return False
        entry = [dest, data, None, 0, 0]
        self.queue.append(entry)
        self._try(entry, self.clock.now_ms())
        return True

    def _try(self, entry, now):
        entry[2] = self.port.send(entry[0], entry[1])
        entry[3] = now
        entry[4] += 1
        if entry[4] > 1:
            self.retries += 1

    def tick(self):
        """Drop what was delivered, resend what was lost or had no route (once
        `retry_ms` has passed since its last try). Returns the number delivered."""
        now = self.clock.now_ms()
        done = 0
        keep = []
        for entry in self.queue:
            st = LOST if entry[2] is None else self.port.status(entry[2])
            if st == DELIVERED:
                done += 1
                continue
            if st == LOST and now - entry[3] >= self.retry_ms:
                self._try(entry, now)
            keep.append(entry)
        self.queue = keep
        self.delivered += done
        return done

    def pending(self):
        return len(self.queue)
