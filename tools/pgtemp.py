"""A throwaway PostgreSQL server for tests and benchmarks: Debian's
PostgreSQL (initdb, pg_ctl) in a temporary folder, on a free loopback port,
as the unprivileged user `postgres` when run as root (the server refuses
root), removed when stopped.

    with PgServer() as pg:
        url = pg.new_database()      # postgresql://postgres@127.0.0.1:PORT/umbra_N

PG_BIN ($UMBRA_PG_BIN, default /usr/lib/postgresql/15/bin) holds the
binaries; `available()` says why not when there are none.
"""
import itertools
import os
import shutil
import subprocess
import tempfile

PG_BIN = os.environ.get("UMBRA_PG_BIN", "/usr/lib/postgresql/15/bin")
RUN_AS = "postgres"


def available():
    """None when a server can be started here, else why not."""
    for exe in ("initdb", "pg_ctl", "postgres"):
        if not os.access(os.path.join(PG_BIN, exe), os.X_OK):
            return "no PostgreSQL server binaries in %s (set UMBRA_PG_BIN)" % PG_BIN
    if os.geteuid() == 0:
        import pwd
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return "running as root and there is no user %r to run PostgreSQL as" % RUN_AS
        if not shutil.which("runuser"):
            return "running as root and there is no runuser to run PostgreSQL as %r" % RUN_AS
    return None


class PgServer:
    """Start on construction; stop() (or the with block's end) stops it and
    removes its folder. durable=False: fsync off (tests: faster, and nothing
    here must survive a power cut)."""

    def __init__(self, durable=False, max_connections=300):
        from tools.console.server import free_port
        why = available()
        if why:
            raise RuntimeError(why)
        self.root = tempfile.mkdtemp(prefix="umbra-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self._names = itertools.count(1)
        self._as_root = os.geteuid() == 0
        if self._as_root:
            import pwd
            pw = pwd.getpwnam(RUN_AS)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        try:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--locale=C", "--no-sync")
            opts = ("-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=%d "
                    "-c shared_buffers=64MB" % (self.port, self.root, max_connections))
            if not durable:
                opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"),
                      "-o", opts, "-w", "-t", "60", "start")
        except BaseException:
            self.stop()
            raise
        self.url = self.url_of("postgres")

    def _run(self, exe, *args):
        cmd = [os.path.join(PG_BIN, exe)] + list(args)
        if self._as_root:
            cmd = ["runuser", "-u", RUN_AS, "--"] + cmd
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           cwd=self.root, timeout=120)
        if r.returncode:
            raise RuntimeError("%s failed (%d): %s" % (exe, r.returncode,
                                                      r.stdout.decode(errors="replace")[-2000:]))
        return r

    def url_of(self, dbname):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, dbname)

    def new_database(self, prefix="umbra"):
        """A new empty database; its URL."""
        import psycopg
        name = "%s_%d" % (prefix, next(self._names))
        with psycopg.connect(self.url, autocommit=True) as c:
            c.execute('CREATE DATABASE "%s"' % name)
        return self.url_of(name)

    def log(self):
        try:
            with open(os.path.join(self.root, "log")) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
