"""firmware/journal.py: the agent's state survives reopen, compaction and
power cuts, record by record (an event and its state change land together)."""
import json


def test_state_is_rebuilt_from_records_after_reopen(portable, tmp_path):
    res = portable("""
        import json
        from journal import Journal
        j = Journal(%r, max_log_bytes=100000).open()
        job = {"deployment_id": "d1", "job_id": "p1", "steps": [{"id": "a"}, {"id": "b"}]}
        j.emit(1, "d1", '{"type":"job.accepted"}', [["job", job]])
        j.emit(2, "d1", '{"type":"step.started"}', [["st", "a", {"status": "running", "work_s": 12.5}]])
        j.commit([["ack", 1], ["nonce", "n1"], ["set", "boot_count", 4]])
        again = Journal(%r).open()
        s = again.state
        print(json.dumps([s["seq"], s["acked"], [[e[0], e[1].decode(), json.loads(e[2])["type"]]
                                                 for e in again.outbox(10, 4096)],
                          s["steps"]["a"], s["steps"]["b"]["status"], s["nonces"],
                          s["boot_count"], again.replayed]))
        """ % (str(tmp_path), str(tmp_path))).check()
    seq, acked, outbox, step_a, step_b, nonces, boots, replayed = res.last_json
    assert (seq, acked, outbox) == (2, 1, [[2, "d1", "step.started"]])
    assert step_a == {"status": "running", "work_s": 12.5, "attempts": 0}
    assert step_b == "pending" and nonces == ["n1"] and boots == 4 and replayed == 3


def test_compaction_keeps_the_state_and_the_spool_the_unacked_outbox(portable, tmp_path):
    res = portable("""
        import json
        from journal import Journal
        j = Journal(%r, max_log_bytes=600).open()
        for i in range(1, 60):
            j.emit(i, "d", json.dumps({"type": "step.progress", "i": i}))
            if i %% 7 == 0:
                j.commit([["ack", i - 3]])
        j.commit([["end", "d"]])
        again = Journal(%r, max_log_bytes=600).open()
        s = again.state
        out = [e[0] for e in again.outbox(100, 1 << 20) if json.loads(e[2])["i"] == e[0]]
        print(json.dumps([s["seq"], s["acked"], out, s["done"],
                          again.store.generation > 0, again.replayed]))
        """ % (str(tmp_path), str(tmp_path))).check()
    seq, acked, outbox, done, compacted, replayed = res.last_json
    assert seq == 59 and acked == 53
    assert outbox == list(range(54, 60))
    assert done == ["d"] and compacted and replayed < 60


def test_a_power_cut_at_any_write_leaves_whole_records_only(mpy, tmp_path):
    """Each record carries an event and the state it reports: after a cut at
    every write index the state and the outbox always agree."""
    res = mpy("""
        import json, os
        from journal import Journal
        from faultfs import FaultFS, PowerCut

        def scenario(fs, root):
            j = Journal(root, max_log_bytes=300, fs=fs).open()
            for i in range(1, 13):
                j.emit(i, "d", '{"i":%%d}' %% i, [["set", "work", i]])
                if i %% 4 == 0:
                    j.commit([["ack", i - 1]])

        def wipe(root):
            for name in os.listdir(root):
                os.remove(root + "/" + name)

        root = %r
        probe = FaultFS()
        scenario(probe, root)
        total = probe.ops
        bad = []
        for cut in range(1, total + 1):
            wipe(root)
            try:
                scenario(FaultFS(cut_at=cut), root)
            except PowerCut:
                pass
            j = Journal(root, max_log_bytes=300).open()
            s = j.state
            work = s.get("work", 0)
            seqs = [e[0] for e in j.outbox(100, 1 << 20) if json.loads(e[2])["i"] == e[0]]
            if s["seq"] != work or (seqs and seqs[-1] != s["seq"]) or seqs != list(range(s["acked"] + 1, s["seq"] + 1)):
                bad.append([cut, s["seq"], work, s["acked"], seqs])
        print(json.dumps({"cuts": total, "bad": bad}))
        """ % str(tmp_path), timeout=120).check()
    out = res.last_json
    assert out["cuts"] > 30
    assert out["bad"] == []
