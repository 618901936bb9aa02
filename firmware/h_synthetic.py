"""The `synthetic` step handler (docs/handlers.md): compute time and output
accounted, nothing materialised. Imported by handlers.get("synthetic")."""
from handlers import _result


def synthetic(step, state, ctx):
    """Spends step.compute_s of compute time and accounts step.output_mb of
    output without materialising it. Each resume performs one slice:
    `gen.send(s)` counts s compute-seconds (next() or send(None): ctx["slice_s"],
    default 1 s); the yield reports the fraction done after it. The executor
    makes that time pass (sleeps, or advances a simulated clock), so it
    decides how long a slice is. State: {"done_ms"} -- resumes exactly."""
    total_ms = int(round(float(step.get("compute_s") or 0) * 1000))
    slice_ms = int(round(float(ctx.get("slice_s") or 1) * 1000)) or 1
    done = min(int(state.get("done_ms", 0)), total_ms)
    granted = None
    while done < total_ms:
        inc = slice_ms if granted is None else int(round(float(granted) * 1000))
        done = min(total_ms, done + max(0, inc))
        state["done_ms"] = done
        if done >= total_ms:
            break
        granted = yield done / total_ms
    out_mb = float(step.get("output_mb") or 0)
    res = _result(size=int(out_mb * 1e6))
    res["output_mb"] = out_mb
    return res
