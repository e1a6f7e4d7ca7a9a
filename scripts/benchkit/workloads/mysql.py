"""mysql: MySQL queries per second answered by `tapedeck replay` from a tape of
mariadb-slap's load recorded through `tapedeck record`, against MariaDB
answering the same load live.

Every run of mariadb-slap logs in with its own process id among the connect
attributes, and the password's scramble answers the upstream's random salt:
replay steers each connection to a recorded session through the MySQL lens
(on by default), which matches logins on user, database and capabilities."""

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from ..common import FAIL, LOOPBACK, BenchError, Skip, fail, log, pause, require_tools
from ..net import free_port, wait_listening
from ..process import Proc, run_cmd, run_watched
from ..sysinfo import tool_version
from ..workload import Ctx, Workload
from .replay import start_tapedeck, stop_replay
from .udp import LegTable, relay_cpu

SERVERS = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")
CLIENTS = 8
ROWS = 1000
CATEGORIES = 20
USER, PASSWORD, DATABASE = "bench", "bench-pw", "bench"
# What each client asks, round robin: point lookups by primary key, a range of
# one category (50 rows) and a small aggregate.
QUERIES = ("SELECT name, price FROM items WHERE id = 17",
           "SELECT name, price FROM items WHERE id = 503",
           "SELECT id, name, price FROM items WHERE category = 3 ORDER BY id",
           "SELECT name, price FROM items WHERE id = 998",
           "SELECT COUNT(*), SUM(price) FROM items WHERE category = 7")
LEGS = ("mariadb", "replay")
LEG_NAMES = {"mariadb": "MariaDB (live)", "replay": "tapedeck replay"}
TARGET = 1.0  # replay / MariaDB, at least
SECONDS_RE = re.compile(r"Average number of seconds to run all queries: ([0-9.]+) seconds")

SETUP_SQL = f"""\
CREATE DATABASE {DATABASE};
USE {DATABASE};
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(32), price INT, category INT, KEY (category));
INSERT INTO items SELECT seq, CONCAT('item ', seq), seq * 7 % 1000, seq % {CATEGORIES} FROM seq_1_to_{ROWS};
CREATE USER {USER}@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{PASSWORD}');
GRANT SELECT ON {DATABASE}.* TO {USER}@'%';
"""


def mariadbd() -> str:
    for path in SERVERS:
        if os.access(path, os.X_OK):
            return path
    raise Skip("mariadbd not installed")


class Mysql(Workload):
    key = "mysql"
    title = "MySQL queries/s"
    per_contestant = False

    def __init__(self):
        self.dir: Optional[Path] = None  # the server's data directory and socket, which it must reach
        self.port = 0
        self.tape: Optional[Path] = None
        self.no_tape: Optional[str] = None  # why the replay leg cannot run
        self.sessions = 0
        self.queries = 0

    def metrics(self, args):
        return []

    @property
    def method_md(self):
        return MYSQL_METHOD_MD

    def section(self, ctx, names, results, keys):
        return mysql_section(ctx, self.no_tape)

    def environment(self, ctx, names):
        return [f"- mysql: mariadb-slap, {CLIENTS} clients, {ctx.args.mysql_queries} queries per run; "
                f"`{tool_version([mariadbd(), '--version'], lambda s: s.split()[2])}`"]

    def slap(self, port: int) -> List[str]:
        """The load: mariadb-slap with CLIENTS connections, each asking its
        share of the queries, round robin over QUERIES."""
        return ["mariadb-slap", "--no-defaults", f"--host={LOOPBACK}", f"--port={port}", "--protocol=TCP",
                f"--user={USER}", f"--password={PASSWORD}", f"--create-schema={DATABASE}",
                f"--concurrency={CLIENTS}", "--iterations=1", f"--number-of-queries={self.queries}",
                "--delimiter=;", f"--query={';'.join(QUERIES)}"]

    def setup(self, ctx):
        server = mariadbd()
        require_tools("mariadb-install-db", "mariadb", "mariadb-slap")
        self.queries = ctx.args.mysql_queries
        # Outside the harness's private temp dir: MariaDB runs as `mysql` when we are root.
        self.dir = Path(tempfile.mkdtemp(prefix="tapedeck-bench-mysql-"))
        self.dir.chmod(0o755)
        data = self.dir / "data"
        as_root = os.geteuid() == 0
        if as_root:
            shutil.chown(self.dir, "mysql", "mysql")
        cp = run_cmd(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                      "--auth-root-authentication-method=normal", "--skip-test-db"]
                     + (["--user=mysql"] if as_root else []), timeout=120, name="mariadb-install-db")
        if cp.returncode != 0:
            raise BenchError(f"mariadb-install-db failed: {cp.stdout.decode(errors='replace')[-500:]}")
        self.port = free_port()
        run_as = ["setpriv", "--reuid=mysql", "--regid=mysql", "--init-groups", "--"] if as_root else []
        srv = Proc(f"mariadbd-{self.port}", run_as + [
            server, "--no-defaults", f"--datadir={data}", f"--port={self.port}", f"--bind-address={LOOPBACK}",
            f"--socket={self.dir / 'm.sock'}", f"--pid-file={self.dir / 'm.pid'}", "--skip-name-resolve",
            "--max-connections=200"], ctx.tmp)
        ctx.shared["mariadbd"] = srv
        wait_listening(self.port, srv, 60, "mariadbd")
        ctx.ports["mariadbd"] = self.port
        cp = run_cmd(["mariadb", "--no-defaults", f"--socket={self.dir / 'm.sock'}", "--user=root",
                      "-e", SETUP_SQL], timeout=60, name="mariadb (setup)")
        if cp.returncode != 0:
            raise BenchError(f"setting MariaDB up failed: {cp.stderr.decode(errors='replace')[-500:]}")
        try:
            self.record(ctx)
        except Exception as exc:
            self.no_tape = f"no tape recorded: {exc}"
            fail(f"mysql: {self.no_tape}")
        return self.port

    def run_slap(self, ctx, port: int, watch: List[Proc], what: str) -> float:
        """Seconds mariadb-slap took for its queries (connecting included)."""
        cp, _ = run_watched(self.slap(port), 600, what, watch)
        err = cp.stderr.decode(errors="replace").strip()
        m = SECONDS_RE.search(cp.stdout.decode(errors="replace"))
        if cp.returncode != 0 or err or m is None:
            raise BenchError(f"{what} rc={cp.returncode}: {err[-300:] or cp.stdout.decode(errors='replace')[-300:]}")
        return max(float(m.group(1)), 0.001)

    def record(self, ctx) -> None:
        """The tape: the measured load once, through `tapedeck record`."""
        tape = self.dir / "mysql.tape"
        proc, port = start_tapedeck(ctx, "tapedeck-record-mysql",
                                    [ctx.tapedeck, "record", "--tape", str(tape), "--listen", f"{LOOPBACK}:0",
                                     "--upstream", f"{LOOPBACK}:{self.port}"])
        try:
            self.run_slap(ctx, port, [ctx.shared["mariadbd"], proc], "mariadb-slap through tapedeck record")
        finally:
            rc = proc.stop(grace=30)
        if rc != 0:
            raise BenchError(f"tapedeck record exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")
        m = re.search(r"tapedeck\.sessions=(\d+)", proc.stderr_path.read_text(errors="replace"))
        self.sessions = int(m.group(1)) if m else 0
        self.tape = tape
        log(f"  mysql: recorded {self.queries} queries in {self.sessions} sessions, "
            f"tape {tape.stat().st_size:,} bytes")

    def teardown(self, ctx):
        srv = ctx.shared.pop("mariadbd", None)
        if srv is not None:
            srv.stop(grace=30)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def start(self, ctx, leg: str) -> Tuple[Proc, int]:
        if leg == "mariadb":
            return ctx.shared["mariadbd"], self.port
        if self.tape is None:
            raise BenchError(self.no_tape or "no tape")
        return start_tapedeck(ctx, f"tapedeck-replay-mysql-r{ctx.round + 1}",
                              [ctx.tapedeck, "replay", "--tape", str(self.tape), "--listen", f"{LOOPBACK}:0",
                               "--report", str(self.dir / "report.json")])

    def leg(self, ctx, leg: str) -> None:
        t = LegTable(ctx, "mysql")
        keys = [t.key(leg, "q", w) for w in ("", "cpu")]
        proc = None
        try:
            proc, port = self.start(ctx, leg)
            before = relay_cpu(proc)
            try:
                seconds = self.run_slap(ctx, port, [proc], f"mariadb-slap against {LEG_NAMES[leg]}")
            finally:
                after = relay_cpu(proc)
                if leg == "replay":
                    # Stopped and its report read even when the client failed: a mismatch says why.
                    replay, proc = proc, None
                    self.check_replay(stop_replay(replay, self.dir / "report.json"))
            qps = self.queries / seconds
            ctx.rec(t.key(leg, "q"), qps)
            if before is not None and after is not None:
                ctx.rec(t.key(leg, "q", "cpu"), (after - before) / self.queries * 1e6)
            log(f"  mysql {leg:8s} {qps:,.0f} queries/s ({seconds:.3f} s for {self.queries})")
        except Exception as exc:
            fail(f"mysql: {leg}: {exc}")
            for k in keys:
                if ctx.record.get(k, {}).get(ctx.round) is None:
                    ctx.rec(k, FAIL)
        finally:
            if leg == "replay" and proc is not None:
                proc.stop(grace=30)

    def check_replay(self, verdict) -> None:
        """A replay counts only if no connection mismatched and every recorded
        session was served."""
        if verdict.mismatches:
            raise BenchError(f"{verdict.mismatches} of {verdict.connections} connections mismatched, "
                             f"first: {verdict.first_mismatch[:400]}")
        if verdict.unused or verdict.replayed != self.sessions:
            raise BenchError(f"{verdict.replayed} of {self.sessions} recorded sessions replayed, "
                             f"{verdict.unused} unused")

    def run_round(self, ctx):
        legs = list(LEGS)
        shift = ctx.round % len(legs)
        for leg in legs[shift:] + legs[:shift]:
            self.leg(ctx, leg)
            pause(0.5)


def mysql_section(ctx: Ctx, no_tape: Optional[str]) -> Optional[str]:
    t = LegTable(ctx, "mysql")
    if not t.rounds():
        return None
    n = ctx.args.mysql_queries
    out = ["### MySQL (`tapedeck replay` of a recorded mariadb-slap load)\n",
           f"Queries per second answered by MariaDB (live, a table of {ROWS} rows) and by `tapedeck replay` (no "
           f"upstream) from a tape of the same load recorded once through `tapedeck record` in front of that "
           f"MariaDB. The load: `mariadb-slap` with {CLIENTS} clients asking {n} queries in all, each client its "
           f"share over one connection, round robin over {len(QUERIES)} SELECTs (lookups by primary key, a range "
           f"of {ROWS // CATEGORIES} rows, an aggregate); the time includes logging in. Each replay must serve "
           f"every recorded session and mismatch nowhere: every client logs in with its own process id, which "
           f"the MySQL lens leaves out of the match. Server CPU: user + system time of MariaDB or of the replay "
           f"process over the run, per query.\n"]
    rows = [["queries/s"] + [t.cell(t.key(leg, "q"), ",.0f") for leg in LEGS],
            ["server CPU per query (µs)"] + [t.cell(t.key(leg, "q", "cpu"), ".1f") for leg in LEGS]]
    head = ["measurement"] + [LEG_NAMES[leg] for leg in LEGS]
    out.append(LegTable.lines(head, rows))
    r = t.ratio(t.key("replay", "q"), t.key("mariadb", "q"))
    out.append(LegTable.lines(["ratio of medians", "value", "target", "met"],
                              [["replay / MariaDB, queries/s", format(r, ".2f") if r is not None else "-",
                                f">= {TARGET:.1f}", "-" if r is None else ("yes" if r >= TARGET else "no")]]))
    out += ["Per round, in round order:\n",
            LegTable.lines(head, [["queries/s"] + [t.per_round(t.key(leg, "q"), ",.0f") for leg in LEGS]])]
    if no_tape:
        out.append(f"The replay leg could not run: {no_tape}.\n")
    return "\n".join(out)


MYSQL_METHOD_MD = f"""\
- mysql: MariaDB (`mariadbd --no-defaults --port=P --bind-address=127.0.0.1 --skip-name-resolve`,
  as the `mysql` user when run as root, a fresh data directory from `mariadb-install-db`) with a
  table of {ROWS} rows in database `{DATABASE}`, read by user `{USER}` (`mysql_native_password`).
  The load: `mariadb-slap --concurrency={CLIENTS} --iterations=1 --number-of-queries=N
  --create-schema={DATABASE} --query=...` over TCP, {CLIENTS} connections (and mariadb-slap's own
  idle one) each asking N/{CLIENTS} queries one at a time, round robin over {len(QUERIES)} SELECTs:
  {'; '.join(f'`{q}`' for q in QUERIES)}. In setup, the load runs once through `tapedeck record
  --tape T --listen 127.0.0.1:0 --upstream 127.0.0.1:P` (stopped with SIGTERM: exit 0 expected).
  Each round runs it straight at MariaDB and against `tapedeck replay --tape T --listen
  127.0.0.1:0 --report R` (no upstream, lenses on by default; started fresh, stopped with SIGTERM:
  exit 0 expected), in rotating order; queries/s is N over mariadb-slap's own time for the run
  (logins included). A replay counts only if its report shows no mismatch and every recorded
  session replayed. Target: replay / MariaDB >= {TARGET:.1f}.
"""
