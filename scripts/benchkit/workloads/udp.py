"""udp: datagrams per second through `tapedeck proxy` and `tapedeck record`
with UDP routes, against socat (`UDP4-LISTEN:...,fork`) in the same run, in
front of one UDP echo server (scripts/udpload.c), and straight at it."""

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..common import FAIL, LOOPBACK, NA, SCRIPT_DIR, BenchError, Skip, fail, log, pause, skip, warn
from ..net import free_udp_port, wait_listening_line, wait_udp_bound
from ..process import Proc, process_tree, run_cmd, run_watched
from ..report import rec_median
from ..sysinfo import CLK_TCK
from ..workload import Ctx, Workload
from .replay import start_tapedeck

LEGS = ("direct", "socat", "tapedeck", "tapedeck-record")
SIZE = 100  # bytes per datagram, each way
# (key, flows, datagrams in flight per flow, label)
TESTS = (("1flow", 1, 64, "1 flow, 64 in flight"),
         ("8flows", 8, 16, "8 flows, 16 in flight each"))
# (numerator, denominator, target: at least)
TARGETS = (("tapedeck", "socat", 2.0), ("tapedeck-record", "tapedeck", 0.9))
LOSS_TIMEOUT_MS = 200  # udpload's: a datagram unanswered this long counts as lost


def build_udpload(ctx: Ctx) -> str:
    """scripts/udpload.c, compiled once per run into the temp dir."""
    if ctx.udpload_bin:
        return ctx.udpload_bin
    src = SCRIPT_DIR / "udpload.c"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise Skip("gcc not installed (needed to build scripts/udpload.c)")
    out = ctx.tmp / "udpload"
    cp = run_cmd([gcc, "-O2", "-o", str(out), str(src)], timeout=120, name="gcc")
    if cp.returncode != 0:
        raise BenchError(f"building udpload.c failed: {cp.stderr.decode(errors='replace')[-500:]}")
    ctx.udpload_bin = str(out)
    return ctx.udpload_bin


_udp_support: Dict[str, Optional[str]] = {}


def tapedeck_udp_missing(ctx: Ctx, upstream_port: int) -> Optional[str]:
    """Why this tapedeck cannot take UDP routes (it rejects `--listen
    udp:...` as an invalid address), or None if it binds one. Asked once
    per run."""
    if ctx.tapedeck in _udp_support:
        return _udp_support[ctx.tapedeck]
    reason = None
    proc = Proc("tapedeck-udp-probe", [ctx.tapedeck, "proxy", "--listen", f"udp:{LOOPBACK}:0",
                                       "--upstream", f"udp:{LOOPBACK}:{upstream_port}"], ctx.tmp)
    try:
        t0 = time.monotonic()
        wait_listening_line(proc, 30, "tapedeck proxy (UDP probe)")
        log(f"  tapedeck binds UDP routes ({time.monotonic() - t0:.2f}s to listen)")
    except BenchError as exc:
        if not proc.alive() and proc.p.returncode == 2:
            tail = proc.stderr_tail(2).strip()
            reason = f"this tapedeck takes no UDP routes (`--listen udp:{LOOPBACK}:0`: {tail})"
        else:
            reason = None  # some other failure: let the legs run and report it
            warn(f"UDP probe of tapedeck: {exc}")
    finally:
        proc.stop(grace=10)
    _udp_support[ctx.tapedeck] = reason
    return reason


def relay_cpu(proc: Optional[Proc]) -> Optional[float]:
    """CPU seconds of a relay and its descendants, or None without a relay:
    user + system time of every live process of its tree, plus that of the
    children they have reaped (socat's per-address children exit when their
    client goes away, and their time moves to their parent's cutime/cstime)."""
    if proc is None:
        return None
    ticks = 0
    for pid in process_tree(proc.pid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        if len(rest) >= 15:
            ticks += sum(int(x) for x in rest[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def run_client(ctx: Ctx, argv: List[str], seconds: float, watch: List[Proc], what: str) -> Dict:
    cp, _ = run_watched(argv, seconds + 60, what, watch)
    lines = cp.stdout.decode(errors="replace").strip().splitlines()
    if cp.returncode != 0 or not lines:
        raise BenchError(f"{what} rc={cp.returncode}: {cp.stderr.decode(errors='replace')[-300:]}")
    return json.loads(lines[-1])


class LegTable:
    """The section tables of a workload whose legs are measured once per round
    (values under ctx.record keys PREFIX_LEG_TEST[_what])."""

    def __init__(self, ctx: Ctx, prefix: str):
        self.ctx = ctx
        self.prefix = prefix

    def key(self, leg: str, test: str, what: str = "") -> str:
        return f"{self.prefix}_{leg}_{test}" + (f"_{what}" if what else "")

    def med(self, key: str) -> Optional[float]:
        return rec_median(self.ctx, key)[0]

    def cell(self, key: str, spec: str) -> str:
        v, flag = rec_median(self.ctx, key)
        return (format(v, spec) + flag) if v is not None else (flag or "-")

    def rounds(self) -> List[int]:
        return sorted({r for k, v in self.ctx.record.items() if k.startswith(self.prefix + "_") for r in v})

    def per_round(self, key: str, spec: str) -> str:
        v = self.ctx.record.get(key, {})
        return " / ".join(format(v[r], spec) if isinstance(v.get(r), (int, float)) else str(v.get(r, "-"))
                          for r in self.rounds()) or "-"

    def ratio(self, a: str, b: str) -> Optional[float]:
        va, vb = self.med(a), self.med(b)
        return va / vb if va is not None and vb else None

    @staticmethod
    def lines(head: List[str], rows: List[List[str]]) -> str:
        out = ["| " + " | ".join(head) + " |", "|---|" + "|".join(["---:"] * (len(head) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out) + "\n"


def target_rows(t: LegTable, shown: Sequence[str], tests: Sequence[Tuple[str, str]],
                targets: Sequence[Tuple[str, str, float]], names: Dict[str, str]) -> List[List[str]]:
    rows = []
    for a, b, target in targets:
        if a not in shown or b not in shown:
            continue
        for test, label in tests:
            r = t.ratio(t.key(a, test), t.key(b, test))
            rows.append([f"{names[a]} / {names[b]}, {label}", format(r, ".2f") if r is not None else "-",
                         f">= {target:.1f}", "-" if r is None else ("yes" if r >= target else "no")])
    return rows


LEG_NAMES = {"direct": "direct (echo)", "socat": "socat", "tapedeck": "tapedeck proxy",
             "tapedeck-record": "tapedeck record"}


class Udp(Workload):
    key = "udp"
    title = "UDP datagrams/s"
    per_contestant = False

    def __init__(self):
        self.legs: List[str] = []
        self.port = 0
        self.unsupported: Optional[str] = None

    def metrics(self, args):
        return []

    @property
    def method_md(self):
        return UDP_METHOD_MD

    def section(self, ctx, names, results, keys):
        return udp_section(ctx, self.legs, self.unsupported)

    def environment(self, ctx, names):
        return [f"- udp: udpload {ctx.args.udp_duration:g} s per test, {SIZE}-byte datagrams; tests: "
                + " and ".join(label for _, _, _, label in TESTS)]

    def setup(self, ctx):
        binary = build_udpload(ctx)
        wanted = LEGS
        if ctx.args.contestants is not None:
            named = {n.strip() for n in ctx.args.contestants.split(",")}
            wanted = tuple(leg for leg in LEGS if leg in named)
        self.port = free_udp_port()
        srv = Proc(f"udp-echo-{self.port}", [binary, "echo", str(self.port), "7200"], ctx.tmp)
        ctx.shared["udp-echo"] = srv
        wait_udp_bound(self.port, srv, 10, "udpload echo")
        ctx.ports["udp-echo"] = self.port
        self.legs = []
        for leg in wanted:
            if leg == "socat" and not shutil.which("socat"):
                skip("udp: contestant socat: socat not installed")
                continue
            if leg.startswith("tapedeck"):
                self.unsupported = tapedeck_udp_missing(ctx, self.port)
                if self.unsupported and ctx.dry_run:
                    skip(f"udp: {leg}: {self.unsupported}")
                    continue
            self.legs.append(leg)
        if not self.legs:
            raise BenchError("no leg to run (name direct, socat, tapedeck or tapedeck-record in --contestants)")
        return self.port

    def teardown(self, ctx):
        srv = ctx.shared.pop("udp-echo", None)
        if srv is not None:
            srv.stop(grace=5)

    def start(self, ctx, leg: str, d: Path) -> Tuple[Optional[Proc], int]:
        tag = f"{leg}-udp-r{ctx.round + 1}"
        up = f"udp:{LOOPBACK}:{self.port}"
        if leg == "direct":
            return None, self.port
        if leg == "socat":
            port = free_udp_port()
            proc = Proc(tag, ["socat", f"UDP4-LISTEN:{port},bind={LOOPBACK},fork,reuseaddr",
                              f"UDP4:{LOOPBACK}:{self.port}"], ctx.tmp)
            wait_udp_bound(port, proc, 15, "socat")
            return proc, port
        argv = [ctx.tapedeck, "proxy"] if leg == "tapedeck" else \
            [ctx.tapedeck, "record", "--tape", str(d / "udp.tape")]
        return start_tapedeck(ctx, tag, argv + ["--listen", f"udp:{LOOPBACK}:0", "--upstream", up])

    def leg(self, ctx, leg: str) -> None:
        t = LegTable(ctx, "udp")
        keys = [t.key(leg, test, w) for test, _, _, _ in TESTS for w in ("", "cpu", "lost", "p99")]
        d = Path(tempfile.mkdtemp(prefix=f"udp-{leg}-", dir=ctx.tmp))
        proc = None
        try:
            try:
                proc, port = self.start(ctx, leg, d)
            except Exception as exc:
                raise BenchError(f"cannot start: {exc}") from exc
            answered = 0
            for test, flows, window, _ in TESTS:
                before = relay_cpu(proc)
                res = run_client(ctx, [ctx.udpload_bin, "client", str(port), f"{ctx.args.udp_duration:g}",
                                       str(window), str(SIZE), str(flows)],
                                 ctx.args.udp_duration, [ctx.shared["udp-echo"]] + ([proc] if proc else []),
                                 "udpload client")
                after = relay_cpu(proc)
                if res["received"] == 0:
                    raise BenchError(f"{test}: no datagram answered: {res}")
                if res["mismatched"]:
                    raise BenchError(f"{test}: {res['mismatched']} replies did not match what was sent")
                lost = res["lost"] / max(1, res["lost"] + res["received"])
                if lost > 0.01:
                    warn(f"udp: {leg} {test}: {res['lost']} of {res['lost'] + res['received']} "
                         f"datagrams lost ({lost:.1%})")
                ctx.rec(t.key(leg, test), res["dps"])
                ctx.rec(t.key(leg, test, "lost"), lost)
                ctx.rec(t.key(leg, test, "p99"), res["p99_us"])
                if before is not None and after is not None:
                    ctx.rec(t.key(leg, test, "cpu"), (after - before) / res["received"] * 1e6)
                answered += res["received"]
                log(f"  udp {leg:15s} {test:6s} {res['dps']:,.0f} datagrams/s, p50 {res['p50_us']:.0f} µs, "
                    f"p99 {res['p99_us']:.0f} µs, lost {res['lost']}, late {res['late']}, errors {res['errors']}")
                pause(0.5)
            if leg == "tapedeck-record":
                rc = proc.stop(grace=30)
                if rc != 0:
                    raise BenchError(f"tapedeck record exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")
                size = sum(f.stat().st_size for f in d.iterdir() if f.name.startswith("udp.tape"))
                ctx.rec("udp_tape_bytes", size / max(1, answered))
        except Exception as exc:
            fail(f"udp: {leg}: {exc}")
            for k in keys:
                if self.round_value(ctx, k) is None:
                    ctx.rec(k, FAIL)
        finally:
            if proc is not None and proc.alive():
                rc = proc.stop(grace=10)
                if leg.startswith("tapedeck") and rc != 0:
                    fail(f"udp: {leg} exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")
            shutil.rmtree(d, ignore_errors=True)

    @staticmethod
    def round_value(ctx, key):
        return ctx.record.get(key, {}).get(ctx.round)

    def run_round(self, ctx):
        shift = ctx.round % len(self.legs)
        for leg in self.legs[shift:] + self.legs[:shift]:
            self.leg(ctx, leg)
            pause(0.5)


def udp_section(ctx: Ctx, legs: List[str], unsupported: Optional[str]) -> Optional[str]:
    t = LegTable(ctx, "udp")
    if not t.rounds():
        return None
    a = ctx.args
    shown = [leg for leg in LEGS if leg in legs]
    out = ["### UDP (`tapedeck proxy` and `tapedeck record`, UDP routes)\n",
           f"Datagrams answered per second by a UDP echo server (scripts/udpload.c, recvmmsg/sendmmsg) "
           f"through `tapedeck proxy`, through `tapedeck record` (tape in a temp dir) and through socat "
           f"(`UDP4-LISTEN:PORT,bind=127.0.0.1,fork,reuseaddr UDP4:127.0.0.1:ECHO`, a process per client "
           f"address), and straight at the echo server (`direct`); the legs rotate from round to round, "
           f"each relay started fresh. The client (`udpload client`) keeps a window of {SIZE}-byte datagrams "
           f"in flight on each flow (a socket, so a client address, of its own) for {a.udp_duration:g} s; "
           f"a datagram unanswered after {LOSS_TIMEOUT_MS} ms counts as lost and its slot is reused. "
           f"Relay CPU: user + system time of the relay's processes over the test, per datagram answered "
           f"(request and reply).\n"]
    labels = [(test, label) for test, _, _, label in TESTS]
    rows = []
    for test, label in labels:
        rows.append([f"datagrams/s, {label}"] + [t.cell(t.key(leg, test), ",.0f") for leg in shown])
    for test, label in labels:
        rows.append([f"relay CPU per datagram (µs), {label}"] +
                    [NA if leg == "direct" else t.cell(t.key(leg, test, "cpu"), ".2f") for leg in shown])
    for test, label in labels:
        rows.append([f"p99 round trip (µs), {label}"] + [t.cell(t.key(leg, test, "p99"), ",.0f") for leg in shown])
    for test, label in labels:
        rows.append([f"lost, {label}"] + [t.cell(t.key(leg, test, "lost"), ".2%") for leg in shown])
    out.append(LegTable.lines(["measurement"] + [LEG_NAMES[l] for l in shown], rows))
    trows = target_rows(t, shown, labels, TARGETS, LEG_NAMES)
    if "direct" in shown and "tapedeck" in shown:
        for test, label in labels:
            r = t.ratio(t.key("tapedeck", test), t.key("direct", test))
            trows.append([f"tapedeck proxy / direct, {label}", format(r, ".2f") if r is not None else "-", "", ""])
    if trows:
        out.append(LegTable.lines(["ratio of medians", "value", "target", "met"], trows))
    tape = rec_median(ctx, "udp_tape_bytes")[0]
    if tape is not None:
        out.append(f"`tapedeck record` wrote {tape:,.0f} bytes of tape per datagram answered "
                   f"({SIZE} bytes each way).\n")
    per = [[f"datagrams/s, {label}"] + [t.per_round(t.key(leg, test), ",.0f") for leg in shown]
           for test, label in labels]
    out += ["Per round, in round order:\n", LegTable.lines(["measurement"] + [LEG_NAMES[l] for l in shown], per)]
    if unsupported:
        out.append(f"The tapedeck legs could not run: {unsupported}.\n")
    return "\n".join(out)


UDP_METHOD_MD = f"""\
- udp: `scripts/udpload.c` (built with gcc into the temp dir) is both the upstream, `udpload echo
  PORT` (one thread sending every datagram back with recvmmsg/sendmmsg in batches of 64, so it
  is not the bottleneck), and the client, `udpload client PORT SECONDS WINDOW {SIZE} FLOWS`: FLOWS
  sockets, each connected to the leg's port from a port of its own, each keeping WINDOW datagrams
  of {SIZE} bytes in flight (a slot and a sequence number in every datagram match replies to
  requests; a datagram unanswered after {LOSS_TIMEOUT_MS} ms counts as lost and its slot is sent
  again, so a loss never stalls the window). Tests: {'; '.join(label for _, _, _, label in TESTS)}.
  Legs: `direct` (the echo server), socat (`UDP4-LISTEN:PORT,bind=127.0.0.1,fork,reuseaddr
  UDP4:127.0.0.1:ECHO`: a forked process per client address), `tapedeck proxy --listen
  udp:127.0.0.1:0 --upstream udp:127.0.0.1:ECHO` and `tapedeck record --tape T` with the same
  route (T in a temp dir, deleted after the leg). Every relay is started fresh for its leg, both
  tests run on it, and the legs rotate from round to round. datagrams/s = replies matched /
  seconds; relay CPU = utime + stime of the relay's process tree (`/proc/PID/stat`) over the
  test, per datagram answered. Targets: proxy/socat >= 2.0, record/proxy >= 0.9.
"""
