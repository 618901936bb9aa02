"""Recovery at open, for lib/store.py's Store and lib/spool.py's Spool:
code a board runs once a boot (and when the dead letters open their spool),
kept out of its resident heap. An overlay: Store.open and Spool.open import
it for the call and drop it from sys.modules at once. It imports nothing of
ours: bootup drops store and spool from sys.modules while their objects
live on, and importing them here would load a second copy (COMMON heap
traps); what it needs of a store comes through the object.
"""


def open_store(st):
    """Store.open: pick the newest valid snapshot, cut a torn or corrupt tail."""
    fs = st.fs
    try:
        fs.listdir(st.root)
    except OSError:
        fs.mkdir(st.root)
    found = [st._check_slot(0), st._check_slot(1)]  # None missing, -1 bad, else gen
    valid = [i for i in (0, 1) if found[i] is not None and found[i] >= 0]
    if len(valid) == 2 and found[1] > found[0]:
        valid.reverse()  # newest first
    logs = st._log_gens()
    st._max_gen = max(logs[-1] if logs else 0, found[0] or 0, found[1] or 0)  # logs sorted
    st.state = None
    st._slot = None
    st.corrupt = st._reset_needed = st._dirty = False
    prev = None
    for i in valid:
        try:
            st.state = st._load_slot(i)
        except ValueError:  # CRC passed but the payload does not decode
            found[i] = -1
            continue
        st._slot = i
        st.generation = found[i]
        j = 1 - i  # the other slot, if it holds an older generation
        if j in valid and found[j] < found[i]:
            prev = found[j]
        break
    if st._slot is not None and -1 in found:
        st.counts["slot_fallbacks"] += 1
    if st._slot is None:
        st.generation = 0
        if found[0] is not None or found[1] is not None or (logs and logs[-1] > 0):
            # slots existed (or were lost) and none is valid: safe defaults
            st.corrupt = True
            st._reset_needed = True
            st._chain = []
            st._cur = st._max_gen
            st._log_bytes = st._good_bytes = 0
            return
    st._chain = [g for g in logs if g >= st.generation]
    _recover_chain(st)
    st._cur = st._chain[-1] if st._chain else st.generation
    st._cleanup(st.generation if prev is None else prev)


def _recover_chain(st):
    total = 0
    good = 0
    for k, gen in enumerate(st._chain):
        path = st._log_path(gen)
        size = st.fs.size(path)
        good = 0
        for good, _, _ in st._scan(path):
            pass
        if good < size:
            # torn or corrupt: this record and everything after it is gone
            st.counts["records_cut"] += 1
            st.counts["bytes_cut"] += size - good
            st._cut(path, good)
            for later in st._chain[k + 1:]:
                st.counts["bytes_cut"] += max(0, st.fs.size(st._log_path(later)))
                st._remove(st._log_path(later))
            st._chain = st._chain[:k + 1] if good else st._chain[:k]
            total += good
            break
        total += good
    st._log_bytes = total
    st._good_bytes = st.fs.size(st._log_path(st._chain[-1])) if st._chain else 0


def _extent(sp, c, k, upto):
    """(first seq, last seq, count, bytes) of one segment copy's good records."""
    first = last = None
    n = size = 0
    for seq, _, _, pos in sp._scan(sp._path(c, k), upto):
        if first is None:
            first = seq
        last, size = seq, pos
        n += 1
    return first, last, n, size


def open_spool(sp, upto, acked):
    """Find the live segments: records in (acked, upto] count, what is
    above upto is an orphan of a commit that never landed. Rebuilds a
    damaged copy from the other and deletes acknowledged segments."""
    ks = []
    folder, head = sp.prefix.rsplit("/", 1)
    plen = len(head)
    for name in sp.fs.listdir(folder or "/"):
        if name.startswith(head) and name[plen + 1:plen + 2] == ".":
            try:
                k = int(name[plen + 2:])
            except ValueError:
                continue
            if k not in ks:
                ks.append(k)
    ks.sort()
    sp.segs = []
    sp.next_k = ks[-1] + 1 if ks else 0
    for i in range(len(ks) - 1, -1, -1):  # newest first: each bounds the one before
        k = ks[i]
        bound = upto if not sp.segs else min(upto, sp.segs[0][1] - 1)
        ext = [_extent(sp, c, k, bound) for c in sp.copies]
        best = 1 if len(ext) > 1 and ext[1][2] > ext[0][2] else 0
        first, last, n, size = ext[best]
        if n == 0 or last <= acked:
            sp._remove(k)
            continue
        if len(ext) > 1 and (ext[1 - best][2] != n or ext[1 - best][3] != size):
            _rebuild(sp, k, sp.copies[best], sp.copies[1 - best], size)
        sp.segs.insert(0, [k, first, last, size])
    sp.cur = None  # appends start a segment of their own (see the module doc)


def _rebuild(sp, k, good, bad, size):
    """Copy the good records of one copy over the other (via a temporary
    file and a rename: a cut leaves the old or the new whole; the same
    steps as store.Store._cut)."""
    tmp = sp.prefix + "tmp"
    src = sp.fs.open(sp._path(good, k), "rb")
    try:
        dst = sp.fs.open(tmp, "wb")
        try:
            left = size
            while left > 0:
                chunk = src.read(min(512, left))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
        finally:
            dst.close()
    finally:
        src.close()
    sp.fs.rename(tmp, sp._path(bad, k))
    sp.repaired += 1
