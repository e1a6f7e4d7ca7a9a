"""review: the tools for reviewing tapes, at sizes far beyond a test fixture.

- text: `tapedeck export --format text` and `tapedeck import --format text`
  of a tape of ONE session (a small request, 1 GiB from the upstream in
  64 KiB events, as replay-scale makes it) and of a tape of 100,000 small
  sessions: wall time, throughput, the command's peak memory, and whether
  the round trip is exact (the imported tape exports to the same text).
- drift: `tapedeck drift` of 1,000 redis sessions, recorded through `tapedeck
  record`, against the live redis-server, beside `tapedeck replay` serving the
  same 1,000 sessions to a client.

The tapes are made once per invocation (tapes.py: recorded seed, then
SQLite; the redis tape by a real recording) and kept across rounds. Run it
alone with `--only review`.
"""

import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..common import FAIL, LOOPBACK, BenchError, fail, log, pause, skip
from ..process import _child_setup, process_tree, run_cmd
from ..report import rec_median
from ..sysinfo import read_status_kib
from ..tapes import add_sessions, check_disk, make_download, measure_tape, record_seed_tape
from ..workload import Ctx, Workload
from .replay import start_redis, start_tapedeck

MIB = 1 << 20
REQUEST = b"GET /download HTTP/1.1\r\nHost: bench\r\n\r\n"
DOWNLOAD, SESSIONS = "download", "sessions"
# The text form of pseudo-random bytes is about five times their size
# (escapes, line prefixes); room for the tape, the imported tape and one text.
DISK_PER_BYTE = 9.0
TEXT_STEPS = ("export", "import")


# ------------------------------------------------------------- commands

def kill_tree(pid: int) -> None:
    """SIGKILL a command and everything it started, each by PID."""
    for each in reversed(process_tree(pid)):
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Watch(threading.Thread):
    """Beside a running command: polls its VmHWM, and kills it (and what it
    started) once the deadline passes. Stopped before the command is reaped,
    so it never signals a PID the kernel has handed to another process."""

    def __init__(self, pid: int, timeout: float):
        super().__init__(daemon=True)
        self.pid, self.deadline = pid, time.monotonic() + timeout
        self.hwm_kib = 0
        self.expired = False
        self.done = threading.Event()

    def run(self) -> None:
        for _ in range(100_000_000):  # bounded by the deadline
            self.hwm_kib = max(self.hwm_kib, read_status_kib(self.pid, ("VmHWM",))["VmHWM"])
            if time.monotonic() > self.deadline:
                self.expired = True
                kill_tree(self.pid)
                return
            if self.done.wait(0.01):
                return


def run_peak(argv: List[str], timeout: float, name: str, workdir: Path) -> Tuple[int, float, float]:
    """Run a command to completion: (exit code, wall seconds, peak RSS in
    MiB); stdout and stderr go to NAME.stdout / NAME.stderr in workdir.

    The peak is the ru_maxrss wait4(2) reports for this one child, exact
    however short the command, when it exceeds this harness's own peak: the
    kernel counts the forked image of the harness in it too, before exec.
    Otherwise it is the VmHWM polled every 10 ms, which can miss the
    command's last moments."""
    own_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(workdir / f"{name}.stdout", "wb") as out, open(workdir / f"{name}.stderr", "wb") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True,
                             preexec_fn=_child_setup)
    watch = Watch(p.pid, timeout)
    watch.start()
    try:
        # WNOWAIT: the child stays a zombie (its PID reserved) until the watcher is gone.
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        wall = time.monotonic() - t0
    except BaseException:
        kill_tree(p.pid)
        raise
    finally:
        watch.done.set()
        watch.join()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    if watch.expired:
        raise BenchError(f"{name} timed out after {timeout:.0f}s")
    peak_kib = usage.ru_maxrss if usage.ru_maxrss > own_kib else watch.hwm_kib
    return p.returncode, wall, peak_kib / 1024


def has_subcommand(tapedeck: str, name: str) -> bool:
    """Whether `tapedeck --help` lists the subcommand: an older build answers
    an unknown one with whatever argument error comes first."""
    cp = run_cmd([tapedeck, "--help"], timeout=30, name="tapedeck --help")
    listed = cp.stdout.decode(errors="replace").splitlines()
    return any(line.split()[:1] == [name] and line.startswith("  ") for line in listed)


def tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in range(1 << 24):  # bounded: 64 TiB in 4 MiB reads
            chunk = f.read(4 * MIB)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def remove(*paths: Path) -> None:
    """Delete files and the SQLite journal files beside them, if any."""
    for path in paths:
        for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            try:
                each.unlink()
            except OSError:
                pass


# ---------------------------------------------------------- redis sessions

def resp(*parts: bytes) -> bytes:
    """A command in RESP, the Redis protocol: an array of bulk strings."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def expect(conn: socket.socket, want: bytes, what: str) -> None:
    """Read exactly the bytes of one reply, which must be `want`."""
    got = b""
    for _ in range(1000):
        if len(got) >= len(want):
            break
        chunk = conn.recv(len(want) - len(got))
        if not chunk:
            break
        got += chunk
    if got != want:
        raise BenchError(f"{what}: got {got[:60]!r}, expected {want!r}")


def redis_session(port: int, i: int) -> None:
    """One session: connect, SET key:i value-i, GET key:i, check both
    replies, close."""
    key, value = b"key:%d" % i, b"value-%d" % i
    with socket.create_connection((LOOPBACK, port), timeout=30) as conn:
        conn.sendall(resp(b"SET", key, value))
        expect(conn, b"+OK\r\n", f"session {i}: SET")
        conn.sendall(resp(b"GET", key))
        expect(conn, b"$%d\r\n%s\r\n" % (len(value), value), f"session {i}: GET")


def redis_sessions(port: int, count: int) -> float:
    """`count` sessions one after another: seconds from the first connect to
    the last close."""
    t0 = time.perf_counter()
    for i in range(count):
        redis_session(port, i)
    return time.perf_counter() - t0


# ---------------------------------------------------------------- workload

class Review(Workload):
    """Text export and import of two large tapes, and drift against replay
    of recorded redis sessions; once per round, in a report section of its
    own (see the module's docstring)."""
    key = "review"
    title = "review at scale"
    per_contestant = False
    DOWNLOAD = 1 << 30
    EVENT = 64 << 10
    SESSIONS = 100_000
    REDIS_SESSIONS = 1_000
    # The debug build imports text at about 1 MB/s: 2 MiB keeps the dry run to a few seconds.
    DRY_RUN_DOWNLOAD = 2 * MIB
    DRY_RUN_SESSIONS = 1_000
    DRY_RUN_REDIS_SESSIONS = 20
    DRIFT_LEGS = ["drift", "replay", "direct"]

    def __init__(self):
        self.dir: Optional[Path] = None
        self.tapes: Dict[str, Path] = {}
        self.broken: Dict[str, str] = {}  # tape -> why it could not be made
        self.redis_tape: Optional[Path] = None
        self.no_redis = False

    def metrics(self, args):
        return []

    def setup(self, ctx):
        return 0

    def sizes(self, ctx: Ctx) -> Tuple[int, int, int]:
        """(download bytes, sessions of the text tape, redis sessions)."""
        if ctx.dry_run:
            return self.DRY_RUN_DOWNLOAD, self.DRY_RUN_SESSIONS, self.DRY_RUN_REDIS_SESSIONS
        return self.DOWNLOAD, self.SESSIONS, self.REDIS_SESSIONS

    def timeout(self, ctx: Ctx) -> float:
        return 120.0 if ctx.dry_run else 3600.0

    def teardown(self, ctx):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir, self.tapes, self.broken, self.redis_tape = None, {}, {}, None

    # --- the tapes

    def make_tape(self, ctx: Ctx, which: str) -> None:
        """Make the text tape `which` once; a tape that cannot be made is
        remembered, so later rounds fail it without trying again."""
        if which in self.broken:
            raise BenchError(f"no {which} tape: {self.broken[which]}")
        if which in self.tapes:
            return
        size, sessions, _ = self.sizes(ctx)
        tape = self.dir / f"{which}.tape"
        t0 = time.monotonic()
        try:
            if which == DOWNLOAD:
                check_disk(ctx, DISK_PER_BYTE * size + 1e9, "review download")
                record_seed_tape(ctx.tapedeck, tape, self.dir)
                make_download(tape, size, self.EVENT, REQUEST)
            else:
                record_seed_tape(ctx.tapedeck, tape, self.dir)
                add_sessions(tape, sessions - 1)
        except Exception as exc:
            remove(tape)
            self.broken[which] = str(exc)
            raise
        self.tapes[which] = tape
        log(f"  review: {which} tape made in {time.monotonic() - t0:.1f}s "
            f"({tape.stat().st_size / 1e6:,.1f} MB)")

    # --- text export and import

    def tapedeck(self, ctx: Ctx, name: str, args: List[str]) -> Tuple[float, float]:
        """Run a tapedeck command that must exit 0: (seconds, peak RSS MiB)."""
        rc, secs, peak = run_peak([ctx.tapedeck] + args, self.timeout(ctx), name, self.dir)
        if rc != 0:
            raise BenchError(f"`tapedeck {args[0]}` exited with {rc}: {tail(self.dir / f'{name}.stderr')}")
        return secs, peak

    def text_case(self, ctx: Ctx, which: str) -> None:
        """Export the tape as text, import the text into a new tape, export
        that again: the two texts must be the same, byte for byte."""
        tag = f"{which}-r{ctx.round + 1}"
        tape = self.tapes[which]
        text, imported, again = (self.dir / f"{which}.txt", self.dir / f"{which}-imported.tape",
                                 self.dir / f"{which}-again.txt")
        remove(text, imported, again)
        if which == DOWNLOAD:
            # The text and the imported tape, besides the tape kept since the first round.
            check_disk(ctx, (DISK_PER_BYTE - 1.2) * self.sizes(ctx)[0] + 1e9, "review text and imported")
        try:
            secs, peak = self.tapedeck(ctx, f"tapedeck-export-{tag}",
                                       ["export", str(tape), "--format", "text", "--output", str(text)])
            tape_bytes, text_bytes = tape.stat().st_size, text.stat().st_size
            ctx.rec(f"review_{which}_tape_mb", tape_bytes / 1e6)
            ctx.rec(f"review_{which}_text_mb", text_bytes / 1e6)
            ctx.rec(f"review_{which}_export_s", secs)
            ctx.rec(f"review_{which}_export_mbps", tape_bytes / 1e6 / secs)
            ctx.rec(f"review_{which}_export_hwm", peak)
            digest = sha256_file(text)
            secs, peak = self.tapedeck(ctx, f"tapedeck-import-{tag}",
                                       ["import", "--format", "text", str(text), "--tape", str(imported)])
            ctx.rec(f"review_{which}_import_s", secs)
            ctx.rec(f"review_{which}_import_mbps", text_bytes / 1e6 / secs)
            ctx.rec(f"review_{which}_import_hwm", peak)
            remove(text)  # the second text needs the room (some 5 GB for the gigabyte)
            self.tapedeck(ctx, f"tapedeck-export-again-{tag}",
                          ["export", str(imported), "--format", "text", "--output", str(again)])
            exact = sha256_file(again) == digest
            ctx.rec(f"review_{which}_exact", 1 if exact else 0)
        finally:
            remove(text, imported, again)
        rec = {k: ctx.record[f"review_{which}_{k}"][ctx.round]
               for k in ("text_mb", "export_s", "export_hwm", "import_s", "import_hwm")}
        log(f"  review {which}: text {rec['text_mb']:,.1f} MB; export {rec['export_s']:.2f}s "
            f"(peak RSS {rec['export_hwm']:,.0f} MiB), import {rec['import_s']:.2f}s "
            f"(peak RSS {rec['import_hwm']:,.0f} MiB); round trip {'exact' if exact else 'NOT exact'}")
        if not exact:
            raise BenchError("the imported tape exports to a different text (SHA-256 differs)")

    def text_round(self, ctx: Ctx) -> None:
        order = [DOWNLOAD, SESSIONS] if ctx.round % 2 == 0 else [SESSIONS, DOWNLOAD]
        for which in order:
            try:
                self.make_tape(ctx, which)
                self.text_case(ctx, which)
            except Exception as exc:
                fail(f"review text {which}: {exc}")
                for step in TEXT_STEPS:
                    ctx.record.setdefault(f"review_{which}_{step}_s", {}).setdefault(ctx.round, FAIL)
            pause(0.3)

    # --- drift against replay

    def record_redis(self, ctx: Ctx, rport: int) -> None:
        """Record the redis sessions once: through `tapedeck record`, stopped
        with SIGINT (exit 0 expected); the tape must hold every session."""
        _, _, count = self.sizes(ctx)
        tape = self.dir / "redis.tape"
        rec, port = start_tapedeck(ctx, f"tapedeck-record-review-r{ctx.round + 1}",
                                   [ctx.tapedeck, "record", "--tape", str(tape), "--listen", f"{LOOPBACK}:0",
                                    "--upstream", f"{LOOPBACK}:{rport}"])
        try:
            try:
                secs = redis_sessions(port, count)
            finally:
                rc = rec.stop(grace=60, sig=signal.SIGINT)
            if rc != 0:
                raise BenchError(f"the recorder exited with {rc} after SIGINT: {rec.stderr_tail(5)}")
            m = measure_tape(tape)
            if m["sessions"] != count:
                raise BenchError(f"the redis tape holds {m['sessions']} sessions, expected {count}")
        except BaseException:
            remove(tape)  # the next round records afresh
            raise
        self.redis_tape = tape
        log(f"  review: {count:,} redis sessions recorded in {secs:.2f}s ({m['size'] / 1e6:.2f} MB)")

    def drift(self, ctx: Ctx, rport: int) -> None:
        """`tapedeck drift TAPE --upstream redis`: exit 0, nothing drifted."""
        if not has_subcommand(ctx.tapedeck, "drift"):
            raise BenchError("this tapedeck has no `drift` command (not in `tapedeck --help`)")
        name = f"tapedeck-drift-r{ctx.round + 1}"
        rc, secs, peak = run_peak([ctx.tapedeck, "drift", str(self.redis_tape), "--upstream", f"{LOOPBACK}:{rport}"],
                                  self.timeout(ctx), name, self.dir)
        stderr = tail(self.dir / f"{name}.stderr")
        if rc != 0:
            raise BenchError(f"`tapedeck drift` exited with {rc} on a tape just recorded (0 expected: "
                             f"nothing drifted): {stderr or tail(self.dir / f'{name}.stdout')}")
        ctx.rec("review_drift_s", secs)
        ctx.rec("review_drift_hwm", peak)
        log(f"  review drift: {secs:.3f}s (peak RSS {peak:,.0f} MiB)")

    def replay(self, ctx: Ctx, rport: int) -> None:
        """The same sessions against `tapedeck replay --strict --require-all`
        (exit 0 on SIGTERM: every session replayed whole, none mismatched)."""
        _, _, count = self.sizes(ctx)
        t0 = time.monotonic()
        proc, port = start_tapedeck(ctx, f"tapedeck-replay-review-r{ctx.round + 1}",
                                    [ctx.tapedeck, "replay", "--tape", str(self.redis_tape), "--listen",
                                     f"{LOOPBACK}:0", "--strict", "--require-all"])
        start = time.monotonic() - t0
        try:
            secs = redis_sessions(port, count)
        finally:
            rc = proc.stop(grace=60)
        if rc != 0:
            raise BenchError(f"tapedeck replay --strict --require-all exited with {rc}: {proc.stderr_tail(5)}")
        ctx.rec("review_replay_start_s", start)
        ctx.rec("review_replay_s", secs)
        log(f"  review replay: listening after {start:.3f}s, {count:,} sessions in {secs:.3f}s")

    def direct(self, ctx: Ctx, rport: int) -> None:
        """The same sessions straight at redis-server: the client's own cost."""
        _, _, count = self.sizes(ctx)
        ctx.rec("review_direct_s", redis_sessions(rport, count))
        log(f"  review direct: {count:,} sessions in {ctx.record['review_direct_s'][ctx.round]:.3f}s")

    def drift_round(self, ctx: Ctx) -> None:
        if shutil.which("redis-server") is None:
            if not self.no_redis:
                skip("review: drift (redis-server not installed)")
            self.no_redis = True
            return
        srv, rport = start_redis(ctx, f"review-r{ctx.round + 1}")
        try:
            try:
                if self.redis_tape is None:
                    self.record_redis(ctx, rport)
            except Exception as exc:
                fail(f"review: recording the redis sessions failed: {exc}")
                for which in self.DRIFT_LEGS:
                    ctx.rec(f"review_{which}_s", FAIL)
                return
            shift = ctx.round % len(self.DRIFT_LEGS)
            for which in self.DRIFT_LEGS[shift:] + self.DRIFT_LEGS[:shift]:
                try:
                    getattr(self, which)(ctx, rport)
                except Exception as exc:
                    fail(f"review {which}: {exc}")
                    ctx.rec(f"review_{which}_s", FAIL)
                pause(0.3)
        finally:
            srv.stop(grace=5)

    def run_round(self, ctx):
        if self.dir is None:
            self.dir = ctx.tmp / "review"
            self.dir.mkdir()
        self.text_round(ctx)
        self.drift_round(ctx)

    # --- the report

    def section(self, ctx, names, results, keys):
        return review_section(ctx, self)

    method_md = """\
- review: two tapes made once per invocation as for replay-scale (a recorded seed
  session, then `sqlite3`): one download of 1 GiB of pseudo-random bytes in 16,384
  events of 64 KiB, and 100,000 small sessions. Each round, per tape (the order
  alternates): `tapedeck export TAPE --format text --output T.txt`, then `tapedeck
  import --format text T.txt --tape NEW`, then `tapedeck export NEW --format text`
  again, whose text must have the SHA-256 of the first. Times are wall seconds of the
  whole command, process start included; export MB/s counts the tape file's bytes,
  import MB/s the text's; peak RSS is the `ru_maxrss` that wait4(2) reports for the
  command. Drift: once, `tapedeck record` in front of a fresh `redis-server` (no
  persistence) records 1,000 sessions, one after another, each a new connection
  sending `SET key:i value-i`, then `GET key:i`, checking both replies and closing; the
  recorder is stopped with SIGINT and must exit 0. Each round, in front of a fresh
  `redis-server` and in an order that rotates: `tapedeck drift TAPE --upstream ...`
  (wall seconds of the command; exit 0 expected, nothing drifted); `tapedeck replay
  --strict --require-all` serving the same 1,000 sessions to the same client (from the
  first connect to the last close; its start to the `listening` line apart), which must
  exit 0 on SIGTERM; and the same sessions straight at `redis-server` (`direct`).
"""


def review_section(ctx: Ctx, review: Review) -> str:
    size, sessions, redis = review.sizes(ctx)

    def med(key):
        return rec_median(ctx, key)[0]

    def num(v, spec):
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    def per_round(key, spec):
        vals = ctx.record.get(key, {})
        return " / ".join(format(v, spec) if isinstance(v, (int, float)) else str(v)
                          for _, v in sorted(vals.items())) or "-"

    def row(label, key, spec):
        return f"| {label} | {num(med(key), spec)} | {per_round(key, spec)} |"

    def exact(which):
        vals = [v for _, v in sorted(ctx.record.get(f"review_{which}_exact", {}).items()) if isinstance(v, int)]
        return (("yes" if all(vals) else "no") if vals else "-"), " / ".join("yes" if v else "no" for v in vals) or "-"

    size_label = f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size / MIB:g} MiB"
    labels = {DOWNLOAD: f"one session of {size_label}", SESSIONS: f"{sessions:,} sessions"}
    out = ["### Review at scale (`tapedeck export --format text`, `tapedeck import`, `tapedeck drift`)\n",
           f"Text: a tape of one session of {size_label} from the upstream in {size // Review.EVENT:,} events "
           f"of 64 KiB, and a tape of {sessions:,} small sessions. Wall seconds of the whole command; export "
           f"MB/s counts the tape file's bytes, import MB/s the text's.\n",
           "| measurement | median | per round |", "|---|---:|---:|"]
    for which in (DOWNLOAD, SESSIONS):
        label = labels[which]
        same, each = exact(which)
        out += [row(f"{label}: tape (MB)", f"review_{which}_tape_mb", ",.1f"),
                row(f"{label}: text (MB)", f"review_{which}_text_mb", ",.1f"),
                row(f"{label}: export (s)", f"review_{which}_export_s", ",.2f"),
                row(f"{label}: export (MB/s of tape)", f"review_{which}_export_mbps", ",.1f"),
                row(f"{label}: export peak RSS (MiB)", f"review_{which}_export_hwm", ",.0f"),
                row(f"{label}: import (s)", f"review_{which}_import_s", ",.2f"),
                row(f"{label}: import (MB/s of text)", f"review_{which}_import_mbps", ",.1f"),
                row(f"{label}: import peak RSS (MiB)", f"review_{which}_import_hwm", ",.0f"),
                f"| {label}: round trip exact (text of the imported tape = first text) | {same} | {each} |"]
    drift, replay, start = med("review_drift_s"), med("review_replay_s"), med("review_replay_start_s")
    ratio = drift / replay if drift is not None and replay else None
    whole = drift / (start + replay) if drift is not None and replay and start is not None else None
    out += ["", f"Drift: {redis:,} recorded redis sessions (SET, then GET, a new connection each) checked "
            f"against a live redis-server, beside replaying them to a client one after another.\n",
            "| measurement | median | per round |", "|---|---:|---:|",
            row("`tapedeck drift` (s)", "review_drift_s", ".3f"),
            row("`tapedeck drift` peak RSS (MiB)", "review_drift_hwm", ",.0f"),
            row("`tapedeck replay` start until listening (s)", "review_replay_start_s", ".3f"),
            row(f"{redis:,} sessions against `tapedeck replay` (s)", "review_replay_s", ".3f"),
            row(f"{redis:,} sessions straight at redis-server (s)", "review_direct_s", ".3f"),
            f"| drift / replay sessions | {num(ratio, '.2f')} | |",
            f"| drift / (replay start + sessions) | {num(whole, '.2f')} | |",
            "", f"Ratios divide medians. Rounds: {len(ctx.record.get(f'review_{SESSIONS}_export_s', {})) or '-'}.\n"]
    return "\n".join(out)
