"""Routing over a contact plan (contactplan.py), portable and small enough for
a board to answer one query: earliest arrival with store and forward, in the
spirit of contact graph routing (CCSDS SABR), and the route over the link
graph of one moment (the spec's instantaneous route) beside it.

    net = Router(plan)
    net.route(src, dst, t, data_mb)     -> route or None   (earliest arrival)
    net.snapshot(src, dst, t, data_mb)  -> route or None   (graph of the moment t)

A hop from u to v over a link window: the data is ready at u at time T; it
leaves at max(T, window start) (the wait), is sent at the window's bandwidth
as it changes segment by segment (data_mb * 8 / bandwidth for a constant
one) and must be sent before the window closes; it arrives after the
latency at the moment sending ends (interpolated between samples). A hop
that cannot be sent within one window waits for the next. The arrival of
a hop never gets earlier when its data is ready later (waiting is allowed
and the latency changes far slower than time), so a Dijkstra over
satellites labelled by arrival time gives the earliest arrival exactly.

A route is {"from", "to", "start", "data_mb", "arrival", "duration_s",
"path": [ids], "hops": [{"from", "to", "ready", "depart", "wait_s",
"sent", "arrival", "tx_s", "latency_ms", "bandwidth_mbps" (average while
sending), "quality" (lowest while sending)}]}. A snapshot route also has
"predicted_s" (the sum of its hop costs at t, as the graph of that moment
sees them); its "arrival" is what the contact plan makes of that path (each
hop as above, waiting where it must), None when a hop can never be sent.
"""
import heapq

EA_KEEP = 4096   # earliest-arrival searches kept for other destinations (then forgotten)


class Router:
    def __init__(self, plan):
        self.plan = plan
        self.ids = list(plan["satellites"])
        # satellite -> neighbour -> [windows by start] (windows of one pair never overlap)
        adj = {}
        for sid in self.ids:
            adj[sid] = {}
        for w in plan["windows"]:
            for u, v in ((w["a"], w["b"]), (w["b"], w["a"])):
                adj[u].setdefault(v, []).append(w)
        self.ends = {}
        self.caps = {}       # (u, v) -> per window: Mb it can carry from each sample to its end
        left = {}            # id(window) -> that list, shared by its two directions
        for u in adj:
            for v in adj[u]:
                adj[u][v].sort(key=lambda w: w["start"])
                self.ends[(u, v)] = [w["end"] for w in adj[u][v]]
                caps = self.caps[(u, v)] = []
                for w in adj[u][v]:
                    c = left.get(id(w))
                    if c is None:
                        c = left[id(w)] = _capacity_left(w)
                    caps.append(c)
        self.adj = adj
        # the links up at a moment, kept by a sweep over the windows' starts and
        # ends as the moments asked go forward (rebuilt when one goes back)
        self._starts = sorted(((w["start"], k, w) for k, w in enumerate(plan["windows"])),
                              key=lambda e: (e[0], e[1]))
        self._up_t = None
        self._up = None        # satellite -> neighbour -> the window up at _up_t
        self._next = 0         # the next window of _starts to come up
        self._ending = []      # heap of (end, k, window) of the windows up
        self._ea = {}          # (src, t, data_mb) -> an earliest-arrival search from src, as far as asked
        self._moment_t = None  # the latest t a snapshot was asked for, and its searches
        self._moment = {}      # (src, bits) -> the search from src at that t run to the end

    def _check(self, src, dst, data_mb):
        for sid in (src, dst):
            if sid not in self.adj:
                raise ValueError("unknown satellite %r" % (sid,))
        if not data_mb >= 0:
            raise ValueError("data_mb must be a number >= 0")

    # --- one hop ------------------------------------------------------------------

    def hop(self, u, v, ready, data_mb):
        """The earliest hop u -> v for data ready at u at `ready`: a hop dict, or None
        when no window left in the plan can carry it."""
        found = self._earliest(u, v, ready, data_mb)
        if found is None:
            return None
        h = _hop(found[0], ready, data_mb, found[1])
        h["from"] = u
        h["to"] = v
        return h

    def _earliest(self, u, v, ready, data_mb):
        """(window, _send's figures) of the earliest hop u -> v, or None."""
        wins = self.adj[u].get(v)
        if not wins:
            return None
        lo = _after(self.ends[(u, v)], ready)   # first window still open at `ready`
        caps = self.caps[(u, v)]
        bits = data_mb * 8.0
        for k in range(lo, len(wins)):
            w = wins[k]
            m = None
            if bits > 0 and len(w["t"]) > 1:
                # a window that cannot carry it from where sending would begin is skipped at once
                depart = ready if ready > w["start"] else w["start"]
                m = segment_at(w, depart)
                if caps[k][m + 1] + w["bandwidth_mbps"][m] * (w["t"][m + 1] - depart) < bits:
                    continue
            sent = _send(w, ready, data_mb, m)
            if sent is not None:
                return w, sent
        return None

    # --- earliest arrival -----------------------------------------------------------

    def _search(self, src, dst, start, edge, tree=None):
        """Dijkstra from src (label `start`) to dst: edge(u, v, label) -> (label
        at v, what the edge was) or None. Labels never fall along an edge.
        Returns the edges of the best path, first to last, and dst's label; None
        when dst cannot be reached. tree: (best, via, done) of a search from
        src run to the end (dst None), to read another dst from: a search
        stopped at dst is the first part of it, so dst's path is the same."""
        if tree is None:
            tree = self._grow(src, dst, start, edge)
        best, via, done = tree
        if dst not in done:
            return None
        edges = []
        v = dst
        while v != src:
            u, info = via[v]
            edges.append((u, v, info))
            v = u
        edges.reverse()
        return edges, best[dst]

    def _grow(self, src, dst, start, edge, state=None):
        """Dijkstra from src until dst is done (dst None: to the end). state: a
        search of the same src, start and edge stopped at another dst, taken
        on from there ([best, via, done, heap, the node done last whose edges
        wait]): the same steps in the same order as a search from scratch."""
        if state is None:
            state = [{src: start}, {}, set(), [(start, src)], None]
        best, via, done, heap, u = state[:5]
        state[4] = None
        adj = self.adj
        while True:
            if u is None:
                if not heap:
                    break
                label, u = heapq.heappop(heap)
                if u in done:
                    u = None
                    continue
                done.add(u)
                if u == dst:
                    state[4] = u   # its edges are for a search that goes on
                    break
            label = best[u]
            for v in adj[u]:
                if v in done:
                    continue
                e = edge(u, v, label)
                if e is not None and (v not in best or e[0] < best[v]):
                    best[v] = e[0]
                    via[v] = (u, e[1])
                    heapq.heappush(heap, (e[0], v))
            u = None
        return best, via, done

    def route(self, src, dst, t, data_mb):
        """Earliest-arrival route of `data_mb` from src (ready at t) to dst, or None."""
        self._check(src, dst, data_mb)

        def hop(u, v, ready):
            # the arrival alone; the hops of the route found are made after
            found = self._earliest(u, v, ready, data_mb)
            if found is None:
                return None
            _, now, _, _, lat = found[1]
            return now + lat / 1000.0, ready

        # one search from src at t serves every destination asked of it (a
        # planner tries each satellite for a step): taken on where it stopped
        key = (src, t, data_mb)
        state = self._ea.get(key)
        if state is None:
            if len(self._ea) >= EA_KEEP:
                self._ea.clear()
            state = self._ea[key] = [{src: t}, {}, set(), [(t, src)], None, hop]
        if dst not in state[2]:
            self._grow(src, dst, t, state[5], state)
        found = self._search(src, dst, t, None, state[:3])
        if found is None:
            return None
        return _route(src, dst, t, data_mb,
                      [self.hop(u, v, ready, data_mb) for u, v, ready in found[0]])

    # --- the graph of one moment ------------------------------------------------------

    def snapshot(self, src, dst, t, data_mb):
        """The route over the links up at t, each costing data_mb * 8 / bandwidth +
        latency as they are at t (no waiting, no change over time), or None when
        the graph of that moment does not join src and dst."""
        found = self._moment_search(src, dst, t, data_mb)
        if found is None:
            return None
        edges, predicted = found
        path = [src] + [v for _, v, _ in edges]
        hops = []
        ready = t
        for k in range(len(path) - 1):
            h = self.hop(path[k], path[k + 1], ready, data_mb)
            if h is None:
                hops = None
                break
            hops.append(h)
            ready = h["arrival"]
        r = _route(src, dst, t, data_mb, hops or [])
        r["path"] = path
        r["predicted_s"] = predicted
        if hops is None:
            r["arrival"] = r["duration_s"] = None
        return r

    def _moment_search(self, src, dst, t, data_mb):
        self._check(src, dst, data_mb)
        bits = data_mb * 8.0
        # one search from src at t serves every destination (a heartbeat to each
        # peer at one instant): those of the latest t are kept
        if self._moment_t != t:
            self._moment_t = t
            self._moment = {}
        key = (src, bits)
        tree = self._moment.get(key)
        if tree is None:
            tree = self._moment[key] = self._grow_moment(src, t, bits)
        return self._search(src, dst, 0.0, None, tree)

    def _grow_moment(self, src, t, bits):
        """_grow from src over the graph of the moment t, run to the end: each
        link up at t costs bits / bandwidth + latency (s) as it is at t."""
        best = {src: 0.0}
        via = {}
        done = set()
        heap = [(0.0, src)]
        up = self._links_up(t)
        while heap:
            label, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            for v, w in up[u].items():
                if v in done:
                    continue
                m = segment_at(w, t)
                bw = w["bandwidth_mbps"][m] if w["bandwidth_mbps"] else 0.0
                if bw <= 0:
                    continue
                c = label + bits / bw + _latency_in(w, t, m) / 1000.0
                if v not in best or c < best[v]:
                    best[v] = c
                    via[v] = (u, None)
                    heapq.heappush(heap, (c, v))
        return best, via, done

    def _links_up(self, t):
        """{satellite: {neighbour: window}} of the windows up at t (start <= t <
        end: window_at's), from the sweep; the dicts are the sweep's own."""
        if self._up_t is None or t < self._up_t:
            self._up = dict((sid, {}) for sid in self.ids)
            self._next = 0
            self._ending = []
        self._up_t = t
        up, starts, ending = self._up, self._starts, self._ending
        i = self._next
        while i < len(starts) and starts[i][0] <= t:
            _, k, w = starts[i]
            i += 1
            if w["end"] > t:
                up[w["a"]][w["b"]] = up[w["b"]][w["a"]] = w
                heapq.heappush(ending, (w["end"], k, w))
        self._next = i
        while ending and ending[0][0] <= t:
            w = heapq.heappop(ending)[2]
            for u, v in ((w["a"], w["b"]), (w["b"], w["a"])):
                if up[u].get(v) is w:   # the pair's next window may be up already
                    del up[u][v]
        return up

    def path_and_links_at(self, src, dst, t, data_mb):
        """(the path of snapshot(src, dst, t, data_mb) alone, [ids]; {u: {v:
        the window up at t}}) or None: the links of the moment are the
        sweep's own dicts, valid until the next call."""
        found = self._moment_search(src, dst, t, data_mb)
        if found is None:
            return None
        return [src] + [v for _, v, _ in found[0]], self._links_up(t)

    def window_at(self, u, v, t):
        wins = self.adj[u].get(v)
        if not wins:
            return None
        lo = _after(self.ends[(u, v)], t)
        if lo < len(wins) and wins[lo]["start"] <= t:
            return wins[lo]
        return None


def segment_at(w, t):
    """Index m of the window's segment t[m] <= t < t[m+1] (the last at its end)."""
    ts = w["t"]
    m = _after(ts, t) - 1
    last = len(ts) - 2
    if m > last:
        m = last
    return m if m > 0 else 0


try:  # the binary searches: CPython's C bisect where there is one
    from bisect import bisect_right as _after
except ImportError:  # MicroPython
    def _after(xs, x):
        """The first index whose value is > x in the sorted list xs (len(xs) if none)."""
        lo, hi = 0, len(xs)
        while lo < hi:
            mid = (lo + hi) // 2
            if xs[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return lo


def latency_at(w, t):
    """The window's latency (ms) at t, linear between its samples."""
    return _latency_in(w, t, None if len(w["t"]) < 2 else segment_at(w, t))


def _latency_in(w, t, m):
    """latency_at(w, t) with t's segment m known."""
    ts = w["t"]
    lat = w["latency_ms"]
    if len(ts) < 2:
        return lat[0]
    span = ts[m + 1] - ts[m]
    if span <= 0:
        return lat[m]
    f = (t - ts[m]) / span
    if f < 0:
        f = 0.0
    elif f > 1:
        f = 1.0
    return lat[m] + (lat[m + 1] - lat[m]) * f


def _capacity_left(w):
    """[Mb the window can carry from its sample i to its end, for each sample]."""
    ts = w["t"]
    bws = w["bandwidth_mbps"]
    left = [0.0] * len(ts)
    for i in range(len(ts) - 2, -1, -1):
        left[i] = left[i + 1] + bws[i] * (ts[i + 1] - ts[i])
    return left


def departure_and_arrival(w, ready, data_mb):
    """Send data_mb over window w from max(ready, start): (the departure,
    the arrival), or None when the window closes first."""
    sent = _send(w, ready, data_mb, None)
    return None if sent is None else (sent[0], sent[1] + sent[4] / 1000.0)


def _send(w, ready, data_mb, m):
    """Sending data_mb over w from `ready`: (depart, sent, the segment
    sending ended in, the lowest quality while sending, the latency then,
    ms), or None. m: the departure's segment, when the caller has it."""
    if ready >= w["end"] and not (ready == w["end"] and data_mb == 0):
        return None
    depart = ready if ready > w["start"] else w["start"]
    ts = w["t"]
    bws = w["bandwidth_mbps"]
    qs = w["quality"]
    left = data_mb * 8.0
    now = depart
    if m is None:
        m = segment_at(w, depart)
    q_min = qs[m] if qs else w["quality_min"]
    while True:
        if left <= 0:
            break
        if m >= len(bws):
            return None
        bw = bws[m]
        seg_end = ts[m + 1]
        if qs[m] < q_min:
            q_min = qs[m]
        can = bw * (seg_end - now)
        if can >= left:
            now += left / bw
            left = 0.0
            break
        left -= can
        now = seg_end
        m += 1
    # the latency where sending ends: in segment m, unless it ended on its edge
    lat = _latency_in(w, now, m) if len(ts) > 1 and ts[m] <= now < ts[m + 1] else \
        latency_at(w, now)
    return depart, now, m, q_min, lat


def _hop(w, ready, data_mb, sent):
    depart, now, m, q_min, lat = sent
    bws = w["bandwidth_mbps"]
    tx = now - depart
    return {"ready": ready, "depart": depart, "wait_s": depart - ready, "sent": now,
            "tx_s": tx, "latency_ms": lat, "arrival": now + lat / 1000.0,
            "bandwidth_mbps": data_mb * 8.0 / tx if tx > 0 else (bws[m] if m < len(bws) else 0.0),
            "quality": q_min}


def _route(src, dst, t, data_mb, hops):
    arrival = hops[-1]["arrival"] if hops else t
    path = [src] + [h["to"] for h in hops]
    return {"from": src, "to": dst, "start": t, "data_mb": data_mb, "arrival": arrival,
            "duration_s": arrival - t, "path": path, "hops": hops}
