"""replay: `tapedeck replay --repeat` against `tapedeck proxy` in front of
redis-server, driven by redis-benchmark -k 0, and the cost of choosing a
session."""

import csv
import io
import json
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .. import microbench
from ..common import FAIL, LOOPBACK, BenchError, Skip, fail, log, pause, require_tools, skip, warn
from ..net import ephemeral_ports, free_port, tcp_time_wait, wait_listening, wait_listening_line
from ..process import Proc, run_watched
from ..sysinfo import port_range, sysctl
from ..tapes import measure_tape
from ..workload import Ctx, Workload

REPLAY_SUMMARY_RE = re.compile(r"replay: (\d+) connections?, (\d+) sessions? replayed, "
                               r"(\d+) mismatched, (\d+) unused")


def start_redis(ctx, label: str) -> Tuple[Proc, int]:
    """A fresh redis-server on a free port; another try if the port was taken
    meanwhile (the benchmark itself churns through ephemeral ports)."""
    for attempt in range(3):
        port = free_port()
        srv = Proc(f"redis-server-{label}-{port}",
                   ["redis-server", "--port", str(port), "--bind", LOOPBACK, "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--maxclients", "10000",
                    "--logfile", ""], ctx.tmp)
        try:
            wait_listening(port, srv, 15, "redis-server")
            return srv, port
        except BaseException as exc:
            srv.stop(grace=5)
            if attempt == 2 or not isinstance(exc, BenchError):
                raise
            warn(f"redis-server on port {port}: {exc}; trying another port")
    raise BenchError("unreachable")


def start_tapedeck(ctx, label: str, argv: List[str]) -> Tuple[Proc, int]:
    """A tapedeck command that listens: (the process, its port)."""
    proc = Proc(label, argv, ctx.tmp)
    try:
        port = wait_listening_line(proc, 60, label)
    except BaseException:
        proc.stop(grace=10)
        raise
    return proc, port


@dataclass
class ReplayVerdict:
    """What a replay server's report says about the connections it served."""
    connections: int
    mismatches: int
    replayed: int
    unused: int
    first_mismatch: str = ""


def stop_replay(proc: Proc, report: Path) -> ReplayVerdict:
    """Stop a `tapedeck replay --report REPORT` server and read its report; it
    must exit with 0 on SIGTERM and print a summary line that agrees with the
    report. Mismatches are counted, not raised: the caller decides."""
    try:
        rc = proc.stop(grace=30)
        if rc != 0:
            raise BenchError(f"tapedeck replay exited with {rc} after SIGTERM: "
                             f"{proc.stderr_tail(5)}")
        try:
            data = json.loads(report.read_text())
            verdict = ReplayVerdict(int(data["connections"]), len(data["mismatches"]),
                                    len(data["replayed"]), len(data["unused"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"replay report {report.name} unreadable: {exc}") from exc
    finally:
        try:
            report.unlink()  # over 10 MB of JSON for 80,000 connections
        except OSError:
            pass
    if verdict.mismatches:
        first = data["mismatches"][0]
        verdict.first_mismatch = (f"{first.get('reason')}: expected {first.get('expected')!r}, "
                                  f"got {first.get('actual')!r}")
    try:
        stderr = proc.stderr_path.read_text(errors="replace")
    except OSError:
        stderr = ""
    m = REPLAY_SUMMARY_RE.search(stderr)
    if m is None:
        fail(f"{proc.name} printed no summary line on stderr")
    elif (int(m.group(1)), int(m.group(3))) != (verdict.connections, verdict.mismatches):
        fail(f"replay summary line {m.group(0)!r} disagrees with the report "
             f"({verdict.connections} connections, {verdict.mismatches} mismatches)")
    if verdict.replayed + verdict.mismatches != verdict.connections:
        fail(f"replay: {verdict.replayed} replayed + {verdict.mismatches} mismatched != "
             f"{verdict.connections} connections")
    return verdict


class Replay(Workload):
    """`tapedeck replay --repeat` against `tapedeck proxy` in front of a real
    redis-server, both driven by `redis-benchmark -k 0` (a new connection for
    every request); the legs rotate from round to round. A third leg runs the
    same client straight at redis-server: the client's own ceiling. The tape
    is recorded once, in the first round, from `redis-benchmark -k 0 -c 50 -n
    N -t ping,set,get` through `tapedeck record`. redis-server runs only while
    a leg needs it (a fresh one each time), never during replay.

    TIME_WAIT: the client closes first, so each request leaves a TIME_WAIT
    socket on the client's ephemeral port. Once the ports toward one
    destination port are used up (about half the ephemeral range: connect()
    tries ports of one parity first), every connect() scans the range for a
    TIME_WAIT socket old enough to reuse, and the client becomes the
    bottleneck, at a different point in each test. So by default every test
    runs as its own redis-benchmark command against freshly started servers
    (new ports, so no TIME_WAIT socket of an earlier command is in the way),
    split into commands of at most --replay-chunk requests; --replay-chunk 0
    runs the single `-t ping,set,get -n N` command per leg instead.

    Plus, once per round, the cost of choosing a session among 100 and among
    10,000 sessions (`tapedeck-microbench replay-choice` from the Benchmarks
    package, no sockets)."""
    key = "replay"
    title = "replay"
    per_contestant = False
    TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]
    LEGS = ["replay", "proxy", "direct"]
    CLIENTS = 50
    CHOICE_SESSIONS = (100, 10_000)
    CHOICE_CONNECTIONS = 20_000
    DRY_RUN_CHOICE_CONNECTIONS = 1_000

    def __init__(self):
        self.tape_dir: Optional[Path] = None
        self.tape_path: Optional[Path] = None

    def metrics(self, args):
        return []

    def setup(self, ctx):
        require_tools("redis-server", "redis-benchmark")
        self.drop_tape()
        return 0

    def teardown(self, ctx):
        self.drop_tape()

    @property
    def method_md(self):
        return REPLAY_METHOD_MD

    def section(self, ctx, names, results, keys):
        return replay_section(ctx)

    def environment(self, ctx, names):
        args = ctx.args
        return [f"- replay: redis-benchmark -k 0 -c {self.CLIENTS} -n {args.replay_n} per test, "
                f"commands of at most {self.chunk(args) or args.replay_n} requests; ephemeral "
                f"ports {port_range()}, net.ipv4.tcp_tw_reuse={sysctl('net/ipv4/tcp_tw_reuse')}"]

    def drop_tape(self) -> None:
        if self.tape_dir is not None:
            shutil.rmtree(self.tape_dir, ignore_errors=True)
        self.tape_dir, self.tape_path = None, None

    @staticmethod
    def chunk(args) -> int:
        """Requests per redis-benchmark command; 0 = one command for all tests."""
        if args.replay_chunk is not None:
            return args.replay_chunk
        return ephemeral_ports() // 4  # half the ports of one parity

    def plan(self, args) -> List[Tuple[str, int]]:
        """The redis-benchmark commands of one leg: (-t value, -n value)."""
        n, c = args.replay_n, self.chunk(args)
        if c == 0:
            return [("ping,set,get", n)]
        parts = -(-n // c)
        sizes = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
        return [(t.lower(), s) for t in self.TESTS for s in sizes]

    # --- the client

    def bench(self, ctx, port: int, what: str, watch: List[Proc], tests: str,
              n: int) -> Tuple[Dict[str, float], Dict[str, float]]:
        """One `redis-benchmark -k 0` command against port: (req/s per test,
        the client's CPU seconds)."""
        names = [t for t in self.TESTS if t.lower() in tests.split(",")
                 or (t.startswith("PING") and "ping" in tests.split(","))]
        argv = ["redis-benchmark", "-h", LOOPBACK, "-p", str(port), "-k", "0",
                "-c", str(self.CLIENTS), "-n", str(n), "-t", tests, "--csv"]
        cp, cpu = run_watched(argv, max(300.0, n * len(names) / 300),
                              f"redis-benchmark -k 0 ({what})", watch)
        text = cp.stdout.decode(errors="replace")
        rows = {r["test"]: r for r in csv.DictReader(io.StringIO(text)) if r.get("test")}
        missing = [t for t in names if t not in rows]
        if cp.returncode != 0 or missing or not names:
            raise BenchError(f"redis-benchmark -k 0 ({what}) rc={cp.returncode}, missing {missing}: "
                             f"{(cp.stderr.decode(errors='replace') or text)[-300:]}")
        return {t: float(rows[t]["rps"]) for t in names}, cpu

    def serve(self, ctx, which: str, tag: str) -> Tuple[int, List[Proc], Callable[[], None]]:
        """Start the servers of one leg: (port for the client, processes to
        watch, a function that stops them and checks how they ended)."""
        if which == "direct":
            srv, port = start_redis(ctx, f"replay-direct-{tag}")
            return port, [srv], lambda: srv.stop(grace=5) and None
        if which == "proxy":
            srv, rport = start_redis(ctx, f"replay-proxy-{tag}")
            try:
                proc, port = start_tapedeck(
                    ctx, f"tapedeck-proxy-replay-{tag}",
                    [ctx.tapedeck, "proxy", "--listen", f"{LOOPBACK}:0",
                     "--upstream", f"{LOOPBACK}:{rport}"])
            except BaseException:
                srv.stop(grace=5)
                raise

            def stop_proxy():
                try:
                    rc = proc.stop(grace=30)
                    if rc != 0:
                        fail(f"tapedeck proxy exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")
                finally:
                    srv.stop(grace=5)
            return port, [proc, srv], stop_proxy
        label = f"tapedeck-replay-{tag}"
        report = ctx.tmp / f"{label}.report.json"
        proc, port = start_tapedeck(
            ctx, label, [ctx.tapedeck, "replay", "--tape", str(self.tape_path),
                         "--listen", f"{LOOPBACK}:0", "--repeat", "--drain-timeout", "2s",
                         "--report", str(report)])
        return port, [proc], lambda: self.finish_replay(ctx, proc, report)

    def finish_replay(self, ctx, proc: Proc, report: Path) -> None:
        """Stop a replay server; it must exit with 0 and write its report.
        Adds its connections and mismatches to this round's counts."""
        verdict = stop_replay(proc, report)
        conns, mism, unused = verdict.connections, verdict.mismatches, verdict.unused
        if mism:
            fail(f"replay: {mism} mismatched connection(s); the replay numbers of round "
                 f"{ctx.round + 1} are not valid. First: {verdict.first_mismatch}")
        for key, v in (("replay_connections", conns), ("replay_mismatches", mism),
                       ("replay_unused_min", unused)):
            old = ctx.record.get(key, {}).get(ctx.round)
            ctx.rec(key, v if old is None else (min(old, v) if key.endswith("_min") else old + v))

    # --- the legs

    def leg(self, ctx, which: str) -> Dict[str, float]:
        """All redis-benchmark commands of one leg, each against fresh servers
        (one set of servers for the whole leg with --replay-chunk 0):
        req/s per test = requests / the sum of the commands' durations."""
        reqs = {t: 0 for t in self.TESTS}
        secs = {t: 0.0 for t in self.TESTS}
        cpu = {"user": 0.0, "sys": 0.0, "wall": 0.0}
        tw_max = 0
        t0 = time.monotonic()
        commands = self.plan(ctx.args)
        for i, (tests, n) in enumerate(commands):
            port, watch, stop = self.serve(ctx, which, f"r{ctx.round + 1}-{i + 1}")
            try:
                res, used = self.bench(ctx, port, which, watch, tests, n)
            finally:
                tw = tcp_time_wait()
                stop()
            tw_max = max(tw_max, tw or 0)
            for t, rps in res.items():
                reqs[t] += n
                secs[t] += n / rps
            for k in cpu:
                cpu[k] += used[k]
        out = {t: reqs[t] / secs[t] for t in self.TESTS}
        busy = (cpu["user"] + cpu["sys"]) / max(cpu["wall"], 1e-3) * 100
        kernel = cpu["sys"] / max(cpu["user"] + cpu["sys"], 1e-6) * 100
        ctx.rec(f"replay_{which}_client_cpu", busy)
        ctx.rec(f"replay_{which}_client_sys", kernel)
        ctx.rec(f"replay_{which}_tw_max", tw_max)
        log(f"  replay {which:7s} {time.monotonic() - t0:5.1f}s  " +
            ", ".join(f"{t}={v:,.0f}/s" for t, v in out.items()) +
            f"; {len(commands)} command(s); client CPU {busy:.0f}% ({kernel:.0f}% of it in "
            f"the kernel); up to {tw_max:,} sockets in TIME_WAIT")
        return out

    def record_tape(self, ctx) -> Path:
        """Record the tape (once): `redis-benchmark -k 0 -c 50 -n N -t
        ping,set,get` through `tapedeck record` in front of a fresh redis-server."""
        if self.tape_path is not None:
            return self.tape_path
        n = ctx.args.replay_n
        d = Path(tempfile.mkdtemp(prefix="replay-tape-", dir=ctx.tmp))
        path = d / "redis.tape"
        self.tape_dir = d
        ok = False
        try:
            srv, rport = start_redis(ctx, f"replay-record-r{ctx.round + 1}")
            try:
                rec, port = start_tapedeck(
                    ctx, f"tapedeck-record-replay-r{ctx.round + 1}",
                    [ctx.tapedeck, "record", "--listen", f"{LOOPBACK}:0",
                     "--upstream", f"{LOOPBACK}:{rport}", "--tape", str(path)])
                try:
                    t0 = time.monotonic()
                    res, _ = self.bench(ctx, port, "record", [rec, srv], "ping,set,get", n)
                    secs = time.monotonic() - t0
                finally:
                    rc = rec.stop(grace=60)
            finally:
                srv.stop(grace=5)
            if rc != 0:
                raise BenchError(f"the recorder exited with {rc} after SIGTERM: {rec.stderr_tail(5)}")
            m = measure_tape(path)
            if m["sessions"] < n * len(self.TESTS):
                raise BenchError(f"the tape holds {m['sessions']} sessions, expected at least "
                                 f"{n * len(self.TESTS)} (one per request)")
            for t, v in res.items():
                ctx.rec(f"replay_record_{t}", v)
            ctx.rec("replay_tape_sessions", m["sessions"])
            ctx.rec("replay_tape_mb", m["size"] / 1e6)
            log(f"  replay tape: {m['sessions']:,} sessions, {m['size'] / 1e6:.1f} MB, recorded "
                f"in {secs:.1f}s at " + ", ".join(f"{t}={v:,.0f}/s" for t, v in res.items()))
            ok = True
        finally:
            if not ok:
                self.drop_tape()
        self.tape_path = path
        return path

    def choice(self, ctx, sessions: int) -> float:
        """µs per connection to choose a session among `sessions`."""
        connections = self.DRY_RUN_CHOICE_CONNECTIONS if ctx.dry_run else self.CHOICE_CONNECTIONS
        return microbench.replay_choice(ctx.args.microbench, sessions, connections) / 1000

    def run_round(self, ctx):
        try:
            self.record_tape(ctx)
        except Exception as exc:
            fail(f"replay: recording the tape failed: {exc}")
        shift = ctx.round % len(self.LEGS)
        for which in self.LEGS[shift:] + self.LEGS[:shift]:
            try:
                if which == "replay" and self.tape_path is None:
                    raise BenchError("no tape")
                res = self.leg(ctx, which)
                for t in self.TESTS:
                    ctx.rec(f"replay_{which}_{t}", res[t])
            except Exception as exc:
                fail(f"replay {which}: {exc}")
                for t in self.TESTS:
                    ctx.rec(f"replay_{which}_{t}", FAIL)
                if which == "replay":
                    ctx.rec("replay_mismatches", FAIL)
            pause(0.3)
        try:
            microbench.require(ctx.args.microbench)
        except Skip as exc:
            if ctx.round == 0:
                skip(f"replay: session choice: {exc}")
            return
        sizes = list(self.CHOICE_SESSIONS)
        if ctx.round % 2:
            sizes.reverse()
        for sessions in sizes:
            try:
                us = self.choice(ctx, sessions)
                ctx.rec(f"choice_{sessions}", us)
                log(f"  replay choice among {sessions:,} sessions: {us:.3f} µs/connection")
            except Exception as exc:
                fail(f"replay-choice --sessions {sessions}: {exc}")
                ctx.rec(f"choice_{sessions}", FAIL)


REPLAY_TARGET = 1.0     # replay req/s, x proxy mode in front of redis
CHOICE_GROWTH_OK = 3.0  # choice cost with 100x the sessions: an index stays under this


def replay_section(ctx: Ctx) -> str:
    n = ctx.args.replay_n
    rounds = sorted({r for k, v in ctx.record.items()
                     if k.startswith("replay_") or k.startswith("choice_") for r in v})
    mism = ctx.record.get("replay_mismatches", {})
    valid = [r for r in rounds if mism.get(r) == 0]  # replay runs whose numbers count
    voided = [r for r in rounds if isinstance(mism.get(r), int) and mism[r] > 0]

    def per_round(key, spec, mark=()):
        vals = ctx.record.get(key, {})
        return " / ".join((format(vals[r], spec) + ("!" if r in mark else ""))
                          if isinstance(vals.get(r), (int, float))
                          else str(vals.get(r, "-")) for r in rounds) or "-"

    def med(key, only=None):
        vals = ctx.record.get(key, {})
        nums = [v for r, v in vals.items() if isinstance(v, (int, float)) and (only is None or r in only)]
        return statistics.median(nums) if nums else None

    def num(v, spec):
        return format(v, spec) if v is not None else FAIL

    def ratio(a, b):
        return a / b if a is not None and b else None

    commands = Replay().plan(ctx.args)
    chunk = Replay.chunk(ctx.args)
    how = (f"each test run as {len(commands) // len(Replay.TESTS)} command(s) of "
           f"{commands[0][1]:,} requests or fewer (`-t ping_inline`, ...), each against freshly "
           f"started servers, so that no command meets TIME_WAIT sockets toward its own "
           f"server port (see the method notes); req/s = requests / the commands' summed durations"
           if chunk else "one `-t ping,set,get` command per leg")
    out = ["### Replay (`tapedeck replay`)\n",
           f"`redis-benchmark -k 0 -c {Replay.CLIENTS}` (a new connection for every request), "
           f"{n:,} requests per test, against `tapedeck replay --repeat` of a tape recorded from "
           f"`redis-benchmark -k 0 -c {Replay.CLIENTS} -n {n} -t ping,set,get` (no redis-server "
           f"running), against `tapedeck proxy` in front of a fresh redis-server, and straight at "
           f"a fresh redis-server (`direct`: what the client itself reaches); {how}. The legs "
           f"rotate from round to round. Replay numbers count only from runs with no mismatch.\n"]
    head = ["test", "replay (req/s)", "proxy + redis (req/s)", "replay/proxy",
            "direct to redis (req/s)", "replay/direct", "replay per round", "proxy per round"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "|".join(["---:"] * (len(head) - 1)) + "|"]
    ratios = {}
    for t in Replay.TESTS:
        r = med(f"replay_replay_{t}", valid)
        p = med(f"replay_proxy_{t}")
        d = med(f"replay_direct_{t}")
        if ratio(r, p) is not None:
            ratios[t] = r / p
        rd = ratio(r, d)
        lines.append(f"| {t} | {num(r, ',.0f')} | {num(p, ',.0f')} | "
                     f"{format(ratios[t], '.2f') if t in ratios else '-'} | {num(d, ',.0f')} | "
                     f"{format(rd, '.2f') if rd is not None else '-'} | "
                     f"{per_round(f'replay_replay_{t}', ',.0f', voided)} | "
                     f"{per_round(f'replay_proxy_{t}', ',.0f')} |")
    cpu = []
    for leg in Replay.LEGS:
        c, k = med(f"replay_{leg}_client_cpu"), med(f"replay_{leg}_client_sys")
        cpu.append(f"{c:.0f}% ({k:.0f}% kernel)" if c is not None and k is not None else "-")
    lines.append(f"| redis-benchmark CPU, % of one core | {cpu[0]} | {cpu[1]} | | {cpu[2]} | | | |")
    total = sum(mism[r] for r in rounds if isinstance(mism.get(r), int))
    lines.append(f"| replay: mismatched connections (must be 0) | "
                 f"{f'{total:,} in all' if mism else '-'} | | | | | "
                 f"{per_round('replay_mismatches', ',')} | |")
    lines.append(f"| replay: connections served | | | | | | {per_round('replay_connections', ',')} | |")
    lines.append(f"| replay: tape sessions never served, fewest of one server | | | | | | "
                 f"{per_round('replay_unused_min', ',')} | |")
    out.append("\n".join(lines) + "\n")
    if voided:
        out.append("`!` a run with mismatches: not valid, left out of the median.\n")

    note = []
    sessions, size = med("replay_tape_sessions"), med("replay_tape_mb")
    if sessions:
        rec_rps = {t: med(f"replay_record_{t}") for t in Replay.TESTS}
        note.append(f"Tape: {sessions:,.0f} sessions, {size:.1f} MB, recorded once at " +
                    ", ".join(f"{t} {v:,.0f}" for t, v in rec_rps.items() if v) + " req/s.")
    tw = [v for leg in Replay.LEGS for v in ctx.record.get(f"replay_{leg}_tw_max", {}).values()
          if isinstance(v, (int, float))]
    if tw:
        note.append(f"Sockets in TIME_WAIT (all ports) at the end of a command: up to {max(tw):,.0f}.")
    if note:
        out.append(" ".join(note) + "\n")

    c_small, c_big = (med(f"choice_{s}") for s in Replay.CHOICE_SESSIONS)
    connections = Replay.DRY_RUN_CHOICE_CONNECTIONS if ctx.dry_run else Replay.CHOICE_CONNECTIONS
    growth = ratio(c_big, c_small)
    verdict_growth = ("-" if growth is None else
                      "index, log-like growth" if growth < CHOICE_GROWTH_OK else
                      "grows with the sessions" if growth < 30 else "scan-like growth")
    if c_small is None and c_big is None and not any(
            k.startswith("choice_") for k in ctx.record):
        out.append("Session choice not measured: `tapedeck-microbench` was not built (see "
                   "docs/benchmarks.md).\n")
    else:
        out.append("\n".join([
            f"| session choice (`tapedeck-microbench replay-choice`, {connections:,} connections, "
            f"no sockets) | µs per connection | per round |", "|---|---:|---:|",
            f"| 100 sessions | {num(c_small, '.3f')} | {per_round('choice_100', '.3f')} |",
            f"| 10,000 sessions | {num(c_big, '.3f')} | {per_round('choice_10000', '.3f')} |",
            f"| 10,000 / 100 | {format(growth, '.2f') + 'x' if growth else '-'} | {verdict_growth} |",
        ]) + "\n")

    def yn(ok):
        return "-" if ok is None else ("yes" if ok else "no")

    worst = min(ratios.items(), key=lambda kv: kv[1]) if ratios else None
    checked = [r for r in rounds if isinstance(mism.get(r), int)]
    targets = [
        ("replay req/s vs proxy in front of redis, every test", f">= {REPLAY_TARGET:.2f}x",
         f"worst {worst[1]:.2f}x ({worst[0]}), best {max(ratios.values()):.2f}x" if worst
         else "not measured",
         yn(None if worst is None or len(ratios) < len(Replay.TESTS) else worst[1] >= REPLAY_TARGET)),
        ("replay mismatches", "0",
         f"{total:,} in {len(checked)} run(s)" if checked else "not measured",
         yn(None if not checked else not voided)),
        ("session choice cost, 10,000 vs 100 sessions (a scan: ~100x)", "does not grow",
         f"{growth:.2f}x: {verdict_growth}" if growth else "not measured",
         yn(None if growth is None else growth < CHOICE_GROWTH_OK)),
    ]
    out += ["#### Targets\n",
            "\n".join(["| target | wanted | measured | met |", "|---|---|---|:---:|"] +
                      [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]) + "\n",
            f"Medians over {len(rounds)} round(s); per-round values in round order.\n"]
    return "\n".join(out)


REPLAY_METHOD_MD = """\
- replay: once (in the first round) `tapedeck record` in front of a fresh `redis-server`
  records `redis-benchmark -k 0 -c 50 -n N -t ping,set,get --csv` (`-k 0`: a new
  connection for every request, so the tape holds about 4N one-request sessions); the
  recorder is stopped with SIGTERM and must exit with 0, and the tape must hold at least
  4N sessions. Every round then drives three legs with `redis-benchmark -k 0 -c 50
  --csv`, N requests per test, in an order that rotates from round to round: `tapedeck
  replay --tape T --repeat --drain-timeout 2s --report R` (no redis-server running),
  `tapedeck proxy` in front of a fresh `redis-server`, and a fresh `redis-server` alone
  (`direct`, the client's own ceiling). Each replay server is stopped with SIGTERM and
  must exit with 0; a round whose reports list a mismatch does not count for replay.
  The client's CPU time comes from `getrusage(RUSAGE_CHILDREN)` around each command.
- TIME_WAIT and ephemeral ports: the client closes first, so every request leaves a
  TIME_WAIT socket on one of the client's ephemeral ports (through the proxy, another
  one on the proxy's upstream leg). A TIME_WAIT socket only gets in the way of a new
  connection to the same server port. Within one command it does: connect() tries ports
  of one parity first, so after about half the ephemeral range (some 14,000 connections
  with the default 32768-60999) every connect() scans the range for a TIME_WAIT socket
  at least a second old that `net.ipv4.tcp_tw_reuse` lets it take over. The client then
  spends nearly all of its time in the kernel, its rate falls to about half, and which
  test that hits depends on N and on the tests before it. So by default each test runs
  as its own command
  (`-t ping_inline`, `-t ping_mbulk`, `-t set`, `-t get`), split into commands of at
  most `--replay-chunk` requests (default: a quarter of the ephemeral range, half the
  ports of one parity), each against freshly started servers on new ports; req/s of a
  test = its requests / the summed durations of its commands. `--replay-chunk 0` runs
  the single `-t ping,set,get -n N` command per leg instead.
- Session choice: `tapedeck-microbench replay-choice --sessions S --connections 20000`
  (from the Benchmarks package) for S = 100 and 10,000 (a synthetic catalog, no
  sockets), once per round, alternating the order; the value is its
  `nanoseconds_per_connection`.
"""
