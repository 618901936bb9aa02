"""Downlinking a job's outputs at contact windows, with the downlink-rate
model (STEPS.md transfers; encrypted first when the job asks). A function of
the agent (`ag`), loaded by its execute task for the transfer phase only."""
from agent import EPS, _load, _r, _unload
from scheduler import sleep_ms


def transfer(ag, job):
    """Downlink the outputs that must reach the ground, at contact windows."""
    st = ag.journal.state
    total = job.get("tx_total")
    rules = _load("planner_rules")  # the rules the planner predicts with
    if total is None:
        outputs = {}
        for sid in st["steps"]:
            outputs[sid] = st["steps"][sid].get("out_mb")
        total = rules.downlink_mb(job["steps"], outputs)
        ag.journal.commit([["jset", "tx_total", total], ["jset", "tx_done", 0.0]])
    if total > 0 and job["security"] and not job.get("encrypted"):
        ag.emit("security.encrypted",
                payload={"algorithm": rules.encryption_algorithm(job["security"]),
                         "data_mb": _r(total)},
                ops=[["jset", "encrypted", True]])
    rules = None
    _unload("planner_rules")
    if total <= 0:
        ag.journal.commit([["jset", "phase", "done"]])
        return
    while not ag.link_up():
        yield sleep_ms(ag.chunk_ms)
        if job.get("cancel") or ag.journal.state["job"] is not job:
            return
    if not job.get("tx_started"):
        ag.emit("transfer.started", payload={"direction": "downlink", "raw_data_mb": _r(total),
                                               "total_transfer_mb": _r(total)},
                  ops=[["jset", "tx_started", True], ["jset", "tx_t0", ag.now()]])
    contact = ag.sensors.contact() or {}
    station = contact.get("station") or "unknown"
    ag.emit("transfer.pass_started", payload={
        "ground_station": station, "station_name": contact.get("station_name") or station,
        "elevation_peak_deg": contact.get("elevation_peak_deg")})
    rate_mb_s = job["downlink_mbps"] / 8.0
    done = job["tx_done"]
    in_pass = 0.0
    mark = int(done / total * 4 + EPS)
    while done < total - EPS and ag.link_up() and not job.get("cancel"):
        t0 = ag.clock.now_ms()
        dt = min(ag.cfg["transfer_chunk_s"], (total - done) / rate_mb_s)
        yield sleep_ms(max(1, int(dt * 1000 + 0.5)))
        sent = min(total - done, (ag.clock.now_ms() - t0) / 1000 * rate_mb_s)
        done += sent
        in_pass += sent
        job["tx_done"] = done
        new_mark = int(done / total * 4 + EPS)
        if new_mark > mark and done < total - EPS:
            mark = new_mark
            ag.emit("transfer.progress", payload={"data_transferred_mb": _r(done),
                                                    "total_mb": _r(total)},
                      ops=[["jset", "tx_done", done]])
    ag.emit("transfer.pass_completed", payload={"data_transferred_mb": _r(in_pass),
                                                  "ground_station": station},
              ops=[["jset", "tx_done", done]])
    if done >= total - EPS:
        ag.emit("transfer.completed", payload={
            "total_transferred_mb": _r(total),
            "duration_s": round(ag.now() - job.get("tx_t0", ag.now()), 1)},
            ops=[["jset", "phase", "done"]])

