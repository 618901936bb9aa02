"""What comes over the uplink before it is a job (PROTOCOL.md): the reply
text, under size and nesting caps, and its signature (authentic, not stale,
not replayed). Split from firmware/workload.py: the agent loads this only
for a signed spec, so its check of an ordinary one holds less in the heap.

    parse_workload(body, max_bytes)  -> (spec, reason)      JSON text -> dict, size/depth caps
    load_workload(body, max_bytes)   -> (workload, reason)  that, then workload.validate_workload
    check_auth(spec, uplink_key, now_epoch, seen_nonces, replay_window_s, require, challenge)
                                     -> reason or None      signed uplink
"""
import json

import timeutil
from workload import Invalid, find_job, validate_workload

MAX_SPEC_BYTES = 65536        # a poll reply bigger than this is refused
MAX_DEPTH = 16                # nesting of objects/arrays in a spec
MAX_STRING = 2048             # any string anywhere in a spec
MAX_LIST = 4096               # any array (the predicted event stream is the long one)
MAX_NONCE = 128


def _check_tree(obj, depth):
    """Caps on nesting, string length and array length, over the whole spec."""
    if depth > MAX_DEPTH:
        raise Invalid("too_deep: nesting deeper than %d levels" % MAX_DEPTH)
    if isinstance(obj, str):
        if len(obj) > MAX_STRING:
            raise Invalid("too_large: a string longer than %d characters" % MAX_STRING)
    elif isinstance(obj, dict):
        if len(obj) > MAX_LIST:
            raise Invalid("too_large: an object with more than %d keys" % MAX_LIST)
        for k in obj:
            if len(k) > MAX_STRING:
                raise Invalid("too_large: a key longer than %d characters" % MAX_STRING)
            _check_tree(obj[k], depth + 1)
    elif isinstance(obj, list):
        if len(obj) > MAX_LIST:
            raise Invalid("too_large: an array longer than %d items" % MAX_LIST)
        for item in obj:
            _check_tree(item, depth + 1)


def parse_workload(body, max_bytes=MAX_SPEC_BYTES):
    """Reply body (bytes/str, or an already parsed dict) -> (spec, reason)."""
    try:
        if isinstance(body, (bytes, bytearray, str)):
            if len(body) > max_bytes:
                return None, "too_large: spec is %d bytes, at most %d" % (len(body), max_bytes)
            try:
                spec = json.loads(body)
            except MemoryError:
                return None, "too_large: spec does not fit in memory"
            except Exception:  # ValueError, RecursionError, UnicodeError...
                return None, "not_json: body is not valid JSON"
        else:
            spec = body
        if not isinstance(spec, dict):
            return None, "not_object: spec must be a JSON object"
        _check_tree(spec, 1)
        return spec, None
    except Invalid as exc:
        return None, exc.args[0]
    except (RuntimeError, MemoryError):  # recursion or heap exhausted while walking
        return None, "too_deep: spec nesting too deep"


def load_workload(body, max_bytes=MAX_SPEC_BYTES, handler_names=None):
    """parse_workload then validate_workload (no signature check)."""
    spec, reason = parse_workload(body, max_bytes)
    if reason:
        return None, reason
    return validate_workload(spec, handler_names)


def check_auth(spec, uplink_key, now_epoch, seen_nonces, replay_window_s=600, require=False,
               challenge=None):
    """None if the spec may be accepted, else a reason starting "unauthenticated".

    A signature is required when an uplink key is configured, when `require`,
    or when the job asks for it (security.require_authenticated_uplink); a
    job that requires it is refused when there is no key to check it with.
    A signed spec is refused when the signature is wrong (signing.verify),
    issued_at is more than replay_window_s in the past or the future of
    now_epoch (None: time unknown, window not checked), its nonce is in
    seen_nonces, or -- when the poll carried a challenge -- it does not carry
    that challenge back (it answers another request). Nothing is recorded
    here: the caller adds the nonce to its (persisted) memory when it
    accepts the workload."""
    try:
        if not isinstance(spec, dict):
            return "unauthenticated: spec is not an object"
        job = find_job(spec)
        security = job.get("security") if isinstance(job, dict) else None
        job_requires = isinstance(security, dict) and security.get("require_authenticated_uplink") is True
        auth = spec.get("auth")
        if auth is None:
            if uplink_key or require or job_requires:
                return "unauthenticated: missing auth"
            return None
        if not uplink_key:
            if require or job_requires:
                return "unauthenticated: no uplink key to check the signature"
            return None
        import signing  # lazily: only a signed spec needs it
        ok, why = signing.verify(spec, uplink_key)
        if not ok:
            return "unauthenticated: %s" % why
        nonce = auth["nonce"]
        if not nonce or len(nonce) > MAX_NONCE:
            return "unauthenticated: malformed nonce"
        try:
            issued = timeutil.parse_iso(auth["issued_at"])
        except ValueError:
            return "unauthenticated: malformed issued_at"
        if now_epoch is not None:
            age = now_epoch - issued
            if age > replay_window_s:
                return "unauthenticated: stale, issued %d s ago (window %d s)" % (age, replay_window_s)
            if age < -replay_window_s:
                return "unauthenticated: issued %d s in the future" % -age
        if nonce in seen_nonces:
            return "unauthenticated: replayed nonce"
        if challenge is not None and spec.get("challenge") != challenge:
            return "unauthenticated: the reply answers another poll (challenge)"
        return None
    except MemoryError:
        raise  # the board's heap, not the spec's fault: the poll tries again
    except Exception as exc:  # a hostile spec must not crash the agent
        return "unauthenticated: cannot check (%s)" % exc
