"""The firmware integrity manifest (RELIABILITY.md, "Code" under SEU).

`umbra deploy` writes `manifest.json` at the board's filesystem root:

    {"format": 1, "version": "0.1.0", "deployed_at": "2026-...Z", "march": "",
     "files": {"boot.py": "<sha256 hex>", "lib/agent.mpy": "<sha256 hex>", ...}}

Paths are relative to the root (the board's working directory at boot), with
'/' separators. At boot, `verify(root)` re-hashes every listed file and names
each one that is missing or whose bytes changed; boot.py enters safe mode on
any problem. The same module builds the manifest on the host, so the format
is defined once.
"""
import binascii
import hashlib
import json

NAME = "manifest.json"
FORMAT = 1

# Problem kinds reported by verify()
MISSING = "missing"          # a listed file cannot be opened
MISMATCH = "mismatch"        # its bytes hash differently
NO_MANIFEST = "no_manifest"  # the manifest itself is absent
BAD_MANIFEST = "bad_manifest"  # unreadable JSON or wrong shape

_CHUNK = 512  # bytes read per step: keeps verification heap-light on a board


def sha256_hex(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def file_sha256(path):
    """SHA-256 of a file as hex, read in small chunks; OSError if unreadable."""
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            digest.update(view[:n])
    return binascii.hexlify(digest.digest()).decode()


def make(files, version, deployed_at, march=""):
    """The manifest dict for {path: sha256 hex}."""
    return {"format": FORMAT, "version": version, "deployed_at": deployed_at,
            "march": march or "", "files": files}


def dumps(manifest):
    # Sorted keys: the same deploy gives the same bytes (and the same hash).
    return json.dumps(manifest, sort_keys=True) if _has_sort_keys() else json.dumps(manifest)


def _has_sort_keys():
    try:
        json.dumps({}, sort_keys=True)
        return True
    except TypeError:  # MicroPython's json.dumps has no sort_keys
        return False


def _join(root, path):
    if not root or root == ".":
        return path
    return root.rstrip("/") + "/" + path


def load(root="", name=NAME):
    """The manifest dict; OSError if absent, ValueError if malformed."""
    with open(_join(root, name)) as f:
        manifest = json.load(f)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ValueError("manifest has no 'files' table")
    for path in files:
        digest = files[path]
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("bad digest for %s" % path)
    return manifest


def verify(root="", name=NAME):
    """Check every file listed in the manifest under `root`.

    Returns a list of (path, problem) pairs, problem one of MISSING, MISMATCH,
    NO_MANIFEST, BAD_MANIFEST; an empty list means the firmware is intact.
    Never raises for a bad file system or manifest (errors are data)."""
    try:
        manifest = load(root, name)
    except OSError:
        return [(name, NO_MANIFEST)]
    except (ValueError, AttributeError):
        return [(name, BAD_MANIFEST)]
    problems = []
    files = manifest["files"]
    for path in sorted(files):
        try:
            actual = file_sha256(_join(root, path))
        except OSError:
            problems.append((path, MISSING))
            continue
        if actual != files[path].lower():
            problems.append((path, MISMATCH))
    return problems
