"""grpc: unary gRPC calls per second answered by `tapedeck replay` through
its HTTP/2 lens, from a tape recorded with `tapedeck record` in front of a
grpcio service, against that service answering the same calls live
(scripts/benchkit/grpc_load.py, grpcio with default channel options)."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..common import FAIL, BenchError, Skip, fail, log, pause
from ..process import Proc, run_watched
from ..workload import Ctx, Workload
from .replay import start_tapedeck
from .udp import LegTable, relay_cpu

REPO = Path(__file__).resolve().parents[3]
SERVER = REPO / "fixtures" / "servers" / "grpc_echo.py"
LOAD = Path(__file__).resolve().parents[1] / "grpc_load.py"
PROCESSES, THREADS, MESSAGES = 4, 8, 50
LEGS = ("live", "replay")
LEG_NAMES = {"live": "grpcio service (live)", "replay": "tapedeck replay"}
TARGET = 1.0  # replay / live, at least
# Every call is one of MESSAGES requests, each recorded once: replay serves
# recorded calls again.
REPLAY_FLAGS = ["--repeat"]


def grpc_version() -> Optional[str]:
    try:
        out = subprocess.run([sys.executable, "-c", "import grpc; print(grpc.__version__)"],
                             capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.decode().strip() if out.returncode == 0 else None


def wait_port_line(proc: Proc, timeout: float, label: str) -> int:
    """The port from the "listening PORT" line grpc_echo.py prints once it serves."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        for line in proc.stdout_text().splitlines():
            if line.startswith("listening ") and line.split()[1].isdigit():
                return int(line.split()[1])
        if not proc.alive():
            raise BenchError(f"{label} exited (rc={proc.p.returncode}) before listening: {proc.stderr_tail(5)}")
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise BenchError(f"{label}: no 'listening' line on stdout within {timeout:.0f}s")


def run_load(ctx: Ctx, argv: List[str], seconds: float, watch: List[Proc], what: str) -> dict:
    import json
    cp, _ = run_watched([sys.executable, str(LOAD)] + argv, seconds + 90, what, watch)
    lines = cp.stdout.decode(errors="replace").strip().splitlines()
    if cp.returncode != 0 or not lines:
        raise BenchError(f"{what} rc={cp.returncode}: {cp.stderr.decode(errors='replace')[-300:]}")
    res = json.loads(lines[-1])
    if res["calls"] == 0 or res["errors"] or res["wrong"]:
        raise BenchError(f"{what}: {res}")
    return res


class Grpc(Workload):
    key = "grpc"
    title = "gRPC unary calls/s"
    per_contestant = False

    def __init__(self):
        self.dir: Optional[Path] = None
        self.port = 0
        self.tape: Optional[Path] = None
        self.version: Optional[str] = None

    def metrics(self, args):
        return []

    @property
    def method_md(self):
        return GRPC_METHOD_MD

    def section(self, ctx, names, results, keys):
        return grpc_section(ctx)

    def environment(self, ctx, names):
        return [f"- grpc: grpc_load.py {ctx.args.grpc_duration:g} s per leg, {PROCESSES} processes x {THREADS} "
                f"threads, {MESSAGES} distinct calls; grpcio `{self.version or '?'}`"]

    def setup(self, ctx):
        self.version = grpc_version()
        if self.version is None:
            raise Skip("python3 with grpcio not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="grpc-", dir=ctx.tmp))
        srv = Proc("grpc-echo", [sys.executable, str(SERVER), "0"], ctx.tmp)
        ctx.shared["grpc-echo"] = srv
        self.port = wait_port_line(srv, 30, "grpc-echo")
        ctx.ports["grpc-echo"] = self.port
        run_load(ctx, [str(self.port), "once", str(MESSAGES)], 30, [srv], "grpc_load once (live)")
        tape = self.dir / "grpc.tape"
        proc, port = start_tapedeck(ctx, "tapedeck-record-grpc",
                                    [ctx.tapedeck, "record", "--tape", str(tape), "--listen", "127.0.0.1:0",
                                     "--upstream", f"127.0.0.1:{self.port}"])
        try:
            run_load(ctx, [str(port), "once", str(MESSAGES)], 30, [srv, proc], "grpc_load once (record)")
        finally:
            rc = proc.stop(grace=30)
        if rc != 0:
            raise BenchError(f"tapedeck record exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")
        self.tape = tape
        log(f"  grpc: recorded {MESSAGES} calls, tape {tape.stat().st_size:,} bytes")
        return self.port

    def teardown(self, ctx):
        srv = ctx.shared.pop("grpc-echo", None)
        if srv is not None:
            srv.stop(grace=5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def start(self, ctx, leg: str) -> Tuple[Proc, int]:
        if leg == "live":
            return ctx.shared["grpc-echo"], self.port
        return start_tapedeck(ctx, f"tapedeck-replay-grpc-r{ctx.round + 1}",
                              [ctx.tapedeck, "replay", "--tape", str(self.tape), "--listen", "127.0.0.1:0",
                               *REPLAY_FLAGS])

    def leg(self, ctx, leg: str) -> None:
        t = LegTable(ctx, "grpc")
        keys = [t.key(leg, "calls", w) for w in ("", "cpu", "p99")]
        proc = None
        try:
            proc, port = self.start(ctx, leg)
            before = relay_cpu(proc)
            seconds = ctx.args.grpc_duration
            res = run_load(ctx, [str(port), f"{seconds:g}", str(PROCESSES), str(THREADS), str(MESSAGES)],
                           seconds, [proc], f"grpc_load ({leg})")
            after = relay_cpu(proc)
            ctx.rec(t.key(leg, "calls"), res["calls_per_s"])
            ctx.rec(t.key(leg, "calls", "p99"), res["p99_us"])
            if before is not None and after is not None:
                ctx.rec(t.key(leg, "calls", "cpu"), (after - before) / res["calls"] * 1e6)
            log(f"  grpc {leg:6s} {res['calls_per_s']:,.0f} calls/s, p50 {res['p50_us']:.0f} µs, "
                f"p99 {res['p99_us']:.0f} µs, {res['calls']:,} calls")
        except Exception as exc:
            fail(f"grpc: {leg}: {exc}")
            for k in keys:
                if ctx.record.get(k, {}).get(ctx.round) is None:
                    ctx.rec(k, FAIL)
        finally:
            if leg == "replay" and proc is not None:
                rc = proc.stop(grace=30)
                if rc != 0:
                    fail(f"grpc: tapedeck replay exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")

    def run_round(self, ctx):
        shift = ctx.round % len(LEGS)
        for leg in LEGS[shift:] + LEGS[:shift]:
            self.leg(ctx, leg)
            pause(0.5)


def grpc_section(ctx: Ctx) -> Optional[str]:
    t = LegTable(ctx, "grpc")
    if not t.rounds():
        return None
    out = ["### gRPC (`tapedeck replay` through the HTTP/2 lens)\n",
           f"Unary gRPC calls per second answered by a grpcio service (`fixtures/servers/grpc_echo.py`, live, "
           f"a thread pool of 16) and by `tapedeck replay {' '.join(REPLAY_FLAGS)}` (no upstream) from a tape of "
           f"{MESSAGES} calls recorded once through `tapedeck record` in front of that service. The client "
           f"(`scripts/benchkit/grpc_load.py`, grpcio with default channel options, so bandwidth probes on) runs "
           f"{PROCESSES} processes, each with one channel and {THREADS} threads calling back to back for "
           f"{ctx.args.grpc_duration:g} s, every call with a deadline, going round the {MESSAGES} requests; every "
           f"answer must be the service's. Server CPU: user + system time of the service or of the replay "
           f"process over the run, per call.\n"]
    rows = [["calls/s"] + [t.cell(t.key(leg, "calls"), ",.0f") for leg in LEGS],
            ["server CPU per call (µs)"] + [t.cell(t.key(leg, "calls", "cpu"), ".1f") for leg in LEGS],
            ["p99 call (µs)"] + [t.cell(t.key(leg, "calls", "p99"), ",.0f") for leg in LEGS]]
    head = ["measurement"] + [LEG_NAMES[l] for l in LEGS]
    out.append(LegTable.lines(head, rows))
    r = t.ratio(t.key("replay", "calls"), t.key("live", "calls"))
    out.append(LegTable.lines(["ratio of medians", "value", "target", "met"],
                              [["replay / live, calls/s", format(r, ".2f") if r is not None else "-",
                                f">= {TARGET:.1f}", "-" if r is None else ("yes" if r >= TARGET else "no")]]))
    out += ["Per round, in round order:\n",
            LegTable.lines(head, [["calls/s"] + [t.per_round(t.key(leg, "calls"), ",.0f") for leg in LEGS]])]
    return "\n".join(out)


GRPC_METHOD_MD = f"""\
- grpc: `fixtures/servers/grpc_echo.py 0` (grpcio, no TLS, a thread pool of 16) serves
  `tapedeck.Echo/Say`, which answers `said:` + the request. In setup, `grpc_load.py PORT once
  {MESSAGES}` makes each of {MESSAGES} distinct calls once, straight at the service and then through
  `tapedeck record --tape T --listen 127.0.0.1:0 --upstream 127.0.0.1:P` (stopped with SIGTERM: exit
  0 expected). Each round measures `grpc_load.py PORT SECONDS {PROCESSES} {THREADS} {MESSAGES}`
  ({PROCESSES} processes with a channel each, {THREADS} threads per process calling back to back with
  a 10 s deadline, the requests round robin) against the service and against `tapedeck replay --tape
  T --listen 127.0.0.1:0 {' '.join(REPLAY_FLAGS)}` (no upstream; started fresh, stopped with SIGTERM:
  exit 0 expected), in rotating order. A run counts only if every call succeeded with the service's
  answer. Target: replay / live >= {TARGET:.1f}.
"""
