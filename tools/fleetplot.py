"""The fleet picture of a constellation plan or parent deployment
(`umbra plot PARENT|PLAN.json -o fleet.png`, tools/plot.py): one lane per
satellite, in fleet order, with its eclipses and ISL link windows (from the
plan's `lanes`), each step where the plan put it (predicted, light) and
where it ran (executed, from the merged events, dark), every ISL hop as an
arrow between two lanes (planned: from `isl_routing`; executed: from
isl_transfer.hop_completed / started..completed), and failovers marked (a
cross on the satellite that gave the step up, an arrow to the one that
acknowledged it).

    marks = fleet_marks(plan, events)   # what is drawn, as data (tests read it)
    draw_fleet(plan, events, "fleet.png")
"""
import timeutil

from tools.plot import COLOURS, spans_from_events


def _t(ev):
    return timeutil.parse_iso(ev["timestamp"])


def fleet_marks(plan, evs):
    """{lanes: [satellite...], names, eclipses {sat: [(a, b)]}, links {sat: [(a, b)]},
    predicted [(sat, step, a, b)], executed [(sat, step, a, b)],
    transfers [(from, to, depart, arrival, "planned"|"executed")],
    failovers [(step, from, t, to or None, t_ack or None)], t0}; plan or evs may be None/[]."""
    plan = plan or {}
    evs = evs or []
    lanes = [l["satellite_id"] for l in plan.get("lanes") or ()]
    names = dict((l["satellite_id"], l.get("name") or l["satellite_id"])
                 for l in plan.get("lanes") or ())
    for sat in plan.get("fleet") or ():
        if sat not in lanes:
            lanes.append(sat)
    for e in evs:
        sat = e.get("satellite_id")
        if sat is not None and sat not in lanes:
            lanes.append(sat)
    out = {"lanes": lanes, "names": names, "eclipses": {}, "links": {}, "predicted": [],
           "executed": [], "transfers": [], "failovers": []}
    for l in plan.get("lanes") or ():
        out["eclipses"][l["satellite_id"]] = [(a, b) for a, b in l.get("eclipses") or ()]
        out["links"][l["satellite_id"]] = [(w[0], w[1]) for w in l.get("isl_windows") or ()]
    for s in plan.get("steps") or ():
        if s.get("start") is not None and s.get("finish") is not None:
            out["predicted"].append((s["satellite"], s["step_id"], s["start"], s["finish"]))
    for h in plan.get("isl_routing") or ():
        out["transfers"].append((h["from"], h["to"], h["depart"], h["arrival"], "planned"))
    # executed: per satellite, the step spans of its own events
    by_sat = {}
    for e in evs:
        by_sat.setdefault(e.get("satellite_id"), []).append(e)
    for sat, sat_evs in by_sat.items():
        for sid, span in spans_from_events(sat_evs)[0]:
            for a, b in span["run"]:
                out["executed"].append((sat, sid, a, b))
        opened = {}
        for e in sat_evs:  # constellation.step_started .. step_completed
            sid = e.get("step_id") or (e.get("payload") or {}).get("step_id")
            if e["type"] == "constellation.step_started":
                opened[sid] = _t(e)
            elif e["type"] == "constellation.step_completed" and sid in opened:
                if not any(x[0] == sat and x[1] == sid for x in out["executed"]):
                    out["executed"].append((sat, sid, opened.pop(sid), _t(e)))
    # executed hops, and failovers
    started = {}
    acks = [e for e in evs if e["type"] == "constellation.failover_acknowledged"]
    for e in evs:
        p = e.get("payload") or {}
        if e["type"] == "isl_transfer.hop_completed":
            lat = (p.get("latency_ms") or 0) / 1000.0
            out["transfers"].append((p.get("from"), p.get("to"), _t(e) - lat, _t(e), "executed"))
        elif e["type"] == "isl_transfer.started":
            started[(p.get("from"), p.get("to"))] = _t(e)
        elif e["type"] == "isl_transfer.completed" and p.get("hop_count") is None:
            a = started.pop((p.get("from"), p.get("to")), None)
            if a is not None and not any(x[4] == "executed" and x[1] == p.get("to")
                                         for x in out["transfers"]):
                out["transfers"].append((p.get("from"), p.get("to"), a, _t(e), "executed"))
        elif e["type"] == "constellation.failover":
            sid = p.get("step_id") or e.get("step_id")
            frm = p.get("from_satellite") or e.get("satellite_id")
            ack = next((a for a in acks if ((a.get("payload") or {}).get("step_id")
                                            or a.get("step_id")) == sid and _t(a) >= _t(e)), None)
            to = None if ack is None else (ack["payload"].get("to_satellite")
                                           or ack.get("satellite_id"))
            out["failovers"].append((sid, frm, _t(e), to, None if ack is None else _t(ack)))
    times = [x[2] for x in out["predicted"] + out["executed"]] + \
        [_t(e) for e in evs if isinstance(e.get("timestamp"), str)]
    out["t0"] = plan.get("start") if plan.get("start") is not None else \
        (min(times) if times else 0.0)
    return out


def draw_fleet(plan, evs, path, title=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = fleet_marks(plan, evs)
    lanes = m["lanes"]
    if not lanes:
        raise ValueError("nothing to draw: no satellites in the plan or the events")
    y = dict((sat, len(lanes) - 1 - i) for i, sat in enumerate(lanes))
    t0 = m["t0"]

    def h(t):
        return (t - t0) / 3600.0

    fig, ax = plt.subplots(figsize=(13, 1.6 + 0.9 * len(lanes)))
    for sat in lanes:
        base = y[sat]
        ax.broken_barh([(h(a), h(b) - h(a)) for a, b in m["eclipses"].get(sat, ())],
                       (base - 0.45, 0.12), color=COLOURS["eclipse"])
        ax.broken_barh([(h(a), h(b) - h(a)) for a, b in m["links"].get(sat, ())],
                       (base + 0.33, 0.12), color=COLOURS["contact"], alpha=0.6)
    for sat, sid, a, b in m["predicted"]:
        if sat in y:
            ax.broken_barh([(h(a), max(h(b) - h(a), 0.01))], (y[sat] - 0.28, 0.26),
                           color="#aec7e8", edgecolor="white", linewidth=0.6)
            ax.text(h(a), y[sat] - 0.15, sid, fontsize=6, va="center")
    for sat, sid, a, b in m["executed"]:
        if sat in y:
            ax.broken_barh([(h(a), max(h(b) - h(a), 0.01))], (y[sat] + 0.02, 0.26),
                           color="#1f77b4", edgecolor="white", linewidth=0.6)
            ax.text(h(a), y[sat] + 0.15, sid, fontsize=6, va="center", color="white")
    for frm, to, a, b, kind in m["transfers"]:
        if frm in y and to in y:
            ax.annotate("", xy=(h(b), y[to]), xytext=(h(a), y[frm]),
                        arrowprops={"arrowstyle": "->", "lw": 1.0,
                                    "color": "#9467bd" if kind == "planned" else "#d62728",
                                    "linestyle": "--" if kind == "planned" else "-"})
    for sid, frm, t, to, t_ack in m["failovers"]:
        if frm in y:
            ax.plot([h(t)], [y[frm]], "x", color="#d62728", markersize=10, mew=2)
            ax.text(h(t), y[frm] + 0.3, "failover %s" % sid, fontsize=6, color="#d62728")
        if to in y and frm in y and t_ack is not None:
            ax.annotate("", xy=(h(t_ack), y[to]), xytext=(h(t), y[frm]),
                        arrowprops={"arrowstyle": "-|>", "lw": 1.6, "color": "#d62728"})
    ax.set_yticks([y[s] for s in lanes])
    ax.set_yticklabels(["%s\n%s" % (m["names"].get(s, s), s) if m["names"].get(s, s) != s
                        else s for s in lanes], fontsize=7)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    # the job's span (with a margin), not the whole planning horizon
    ends = [x[3] for x in m["predicted"] + m["executed"]] + [x[3] for x in m["transfers"]] + \
        [x[4] or x[2] for x in m["failovers"]]
    end = max(ends) if ends else t0 + 3600
    span = max(3600.0, end - t0)
    ax.set_xlim(-0.03 * span / 3600.0, h(t0 + 1.15 * span))
    ax.set_xlabel("hours from %s" % timeutil.iso_utc(int(t0)))
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=COLOURS["eclipse"], label="eclipse"),
                       Patch(color=COLOURS["contact"], alpha=0.6, label="ISL link up"),
                       Patch(color="#aec7e8", label="step (predicted)"),
                       Patch(color="#1f77b4", label="step (executed)"),
                       Line2D([], [], color="#9467bd", ls="--", label="ISL hop (planned)"),
                       Line2D([], [], color="#d62728", label="ISL hop (executed)"),
                       Line2D([], [], color="#d62728", marker="x", ls="", label="failover")],
              loc="upper right", fontsize=6, ncol=4)
    ax.set_title(title or "fleet")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def is_fleet_plan(doc):
    """A constellation plan document (POST /v1/constellation/plan, umbra plan --fleet --json)."""
    return isinstance(doc, dict) and isinstance(doc.get("steps"), list) and \
        isinstance(doc.get("fleet"), list) and "orbital_environment" not in doc
