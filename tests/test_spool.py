"""lib/spool.py: the outbox on flash. Records come back in order, in batches
within their limits; acknowledged segments go; an orphan (a record whose
commit never landed) is never read; a flipped bit in one copy loses nothing."""


def test_records_come_back_in_order_in_bounded_batches_and_acked_segments_go(portable, tmp_path):
    res = portable("""
        import json, os
        from spool import Spool
        root = %r
        sp = Spool(root, "outbox", segment_bytes=200).open(0, 0)
        for i in range(1, 21):
            sp.append(i, "dep-%%d" %% (i // 10), '{"i":%%d,"pad":"%%s"}' %% (i, "x" * 20))
        first = [[s, d.decode(), json.loads(t)["i"]] for s, d, t in sp.records(0, 5, 4096)]
        small = [s for s, _, _ in sp.records(3, 100, 90)]       # 2 texts of ~33 bytes fit
        rest = [s for s, _, _ in sp.records(18, 100, 1 << 20)]
        files0 = len([n for n in os.listdir(root) if n.startswith("outbox.")])
        sp.drop(12)
        files1 = len([n for n in os.listdir(root) if n.startswith("outbox.")])
        again = Spool(root, "outbox", segment_bytes=200).open(20, 12)
        after = [s for s, _, _ in again.records(12, 100, 1 << 20)]
        print(json.dumps([first, small, rest, files0 > files1 > 0, after]))
        """ % str(tmp_path)).check()
    first, small, rest, fewer, after = res.last_json
    assert first == [[1, "dep-0", 1], [2, "dep-0", 2], [3, "dep-0", 3], [4, "dep-0", 4],
                     [5, "dep-0", 5]]
    assert small == [4, 5] and rest == [19, 20] and fewer
    assert after == list(range(13, 21))


def test_an_orphan_record_is_never_read_and_its_seq_is_written_again(portable, tmp_path):
    res = portable("""
        import json
        from spool import Spool
        root = %r
        sp = Spool(root).open(0, 0)
        for i in range(1, 4):
            sp.append(i, "d", '{"v":"good%%d"}' %% i)
        sp.append(4, "d", '{"v":"orphan"}')    # its commit failed: the journal says seq 3
        sp.seal(4)
        sp.append(4, "d", '{"v":"good4"}')     # the same seq, emitted again
        live = [json.loads(t)["v"] for _, _, t in sp.records(0, 100, 1 << 20)]
        sp.append(5, "d", '{"v":"orphan5"}')   # a power cut before its commit
        boot = Spool(root).open(4, 0)          # the journal got to seq 4
        boot.append(5, "d", '{"v":"good5"}')
        after = [json.loads(t)["v"] for _, _, t in boot.records(0, 100, 1 << 20)]
        print(json.dumps([live, after]))
        """ % str(tmp_path)).check()
    live, after = res.last_json
    assert live == ["good1", "good2", "good3", "good4"]
    assert after == ["good1", "good2", "good3", "good4", "good5"]


def test_a_flipped_bit_in_one_copy_loses_nothing_and_the_copy_is_rebuilt(portable, tmp_path):
    res = portable("""
        import json, os
        from spool import Spool
        root = %r
        sp = Spool(root, segment_bytes=100000).open(0, 0)
        for i in range(1, 11):
            sp.append(i, "d", '{"i":%%d}' %% i)
        path = root + "/outbox.a.0"
        with open(path, "rb") as f:
            blob = bytearray(f.read())
        blob[len(blob) // 2] ^= 0x10               # an upset in the middle of copy a
        with open(path, "wb") as f:
            f.write(blob)
        read = [s for s, _, t in sp.records(0, 100, 1 << 20) if json.loads(t)["i"] == s]
        boot = Spool(root, segment_bytes=100000).open(10, 0)
        with open(path, "rb") as f:
            a = f.read()
        with open(root + "/outbox.b.0", "rb") as f:
            b = f.read()
        print(json.dumps([read, boot.repaired, a == b, boot.bad + sp.bad]))
        """ % str(tmp_path)).check()
    read, repaired, same, bad = res.last_json
    assert read == list(range(1, 11))
    assert repaired == 1 and same and bad == 0


def test_a_reseq_renumbers_what_the_console_has_not_acknowledged(portable, tmp_path):
    """The Console already holds seqs up to 40 (our store was lost): the
    unacknowledged events go out as 41, 42 ..., across a reboot too."""
    res = portable("""
        import json
        from journal import Journal
        root = %r
        j = Journal(root).open()
        for i in range(1, 6):
            j.emit(i, None, '{"i":%%d}' %% i)
        j.commit([["ack", 2]])
        j.commit([["reseq", 40]])
        j.emit(j.state["seq"] + 1, None, '{"i":6}')
        out = [[s, json.loads(t)["i"]] for s, _, t in j.outbox(100, 1 << 20)]
        j2 = Journal(root).open()
        out2 = [[s, json.loads(t)["i"]] for s, _, t in j2.outbox(100, 1 << 20)]
        print(json.dumps([out, out2, j2.state["seq"], j2.pending()]))
        """ % str(tmp_path)).check()
    out, out2, seq, pending = res.last_json
    assert out == [[41, 3], [42, 4], [43, 5], [44, 6]] and out2 == out
    assert seq == 44 and pending == 4


def test_the_spool_has_a_bound_and_refuses_past_it(portable, tmp_path):
    res = portable("""
        import json
        from spool import Spool, SpoolFull
        sp = Spool(%r, max_bytes=400).open(0, 0)
        n = 0
        try:
            for i in range(1, 100):
                sp.append(i, "d", '{"pad":"%%s"}' %% ("x" * 40))
                n = i
        except SpoolFull:
            pass
        print(json.dumps([n, len(sp.records(0, 100, 1 << 20))]))
        """ % str(tmp_path)).check()
    n, kept = res.last_json
    assert 0 < n < 99 and kept == n


def test_a_full_outbox_sheds_an_event_counted_and_commits_its_state_change_without_raising(
        portable, tmp_path):
    """A boot loop with no link fills the outbox with agent.booted: the next
    boot's event no longer fits, yet its state change (the boot count) is
    made durable, the event counted as shed, nothing raised; what is already
    in the outbox (numbered, counted as emitted) stays."""
    res = portable("""
        import json
        from journal import Journal
        root = %r
        j = Journal(root).open()
        j.spool.max_bytes = 2048
        ok = []
        for boot in range(1, 41):
            ok.append(j.emit(j.state["seq"] + 1, None, '{"type":"agent.booted","pad":"%%s"}' %% ("x" * 80),
                             [["set", "boot_count", boot]]))
        j2 = Journal(root).open()
        kept = [s for s, _, _ in j2.outbox(100, 1 << 20)]
        print(json.dumps([ok.count(True), ok.index(False), j2.state["boot_count"], j2.state["shed"],
                          j2.state["seq"], kept]))
        """ % str(tmp_path)).check()
    n_ok, first_shed, boots, shed, seq, kept = res.last_json
    assert n_ok == first_shed and 10 < n_ok < 40  # fills up, then every further one is shed
    assert boots == 40 and shed == 40 - n_ok and seq == n_ok
    assert kept == list(range(1, n_ok + 1))
