"""faults: what the fault stage costs `tapedeck proxy` with no toxics (and
with a `latency` toxic of 0 ms, and with the control API on), and how
closely the `latency` and `bandwidth` toxics keep to their settings."""

import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import csv
import io

from ..common import FAIL, LOOPBACK, PACKAGE_DIR, BenchError, Skip, fail, log, pause, skip
from ..net import free_port, wait_listening
from ..process import Proc, run_cmd, run_watched
from ..sysinfo import process_cpu_seconds, read_status_kib
from ..workload import Ctx, Workload
from .replay import start_redis, start_tapedeck
from .udp import LegTable

DOWNLOAD_SERVER = PACKAGE_DIR / "download_server.py"
SEED = "1"  # the draws do not matter here: no toxic draws anything
CLIENTS = 50
RR_TEST = ("-t", "get")
# The cost legs: (key, label, fault file or None, control API on). The API
# leg runs only if the binary takes --api.
COST_LEGS = (("plain", "`tapedeck proxy`", None, False),
             ("empty", "`--fault` with no toxics (`[]`)", "empty", False),
             ("api", "`--api 127.0.0.1:PORT`, no toxics", None, True),
             ("latency0", "`--fault`: `latency` 0 ms", "latency0", False))
COST_TARGETS = {"empty": 0.98, "api": 0.98, "latency0": 0.95}
# Cycles of the cost legs per round (normal, dry run).
CYCLES = (4, 1)
# The latency settings (ms) and samples per round (normal, dry run).
LATENCIES = ((1, 200, 10), (10, 200, 10), (100, 50, 3))
BASELINE_SAMPLES = (200, 10)
# time.sleep samples per setting (normal, dry run): how late this machine wakes a sleeping thread.
SLEEP_SAMPLES = {1: (50, 2), 10: (50, 2), 100: (10, 1)}
WARMUP = 5
# The bandwidth settings: (rate in KB/s, payload bytes, dry-run payload bytes).
# `rate` 0 is the plain proxy, the ceiling the toxic is measured under.
RATES = ((1000, 3_000_000, 50_000), (100_000, 300_000_000, 1_000_000), (0, 300_000_000, 1_000_000))
FAULT_FILES = {
    "empty": "[]\n",
    "latency0": "- {type: latency, attributes: {latency: 0, jitter: 0}}\n",
    **{f"latency{ms}": f"- {{type: latency, stream: downstream, attributes: {{latency: {ms}, jitter: 0}}}}\n"
       for ms, _, _ in LATENCIES},
    **{f"bandwidth{rate}": f"- {{type: bandwidth, stream: downstream, attributes: {{rate: {rate}}}}}\n"
       for rate, _, _ in RATES if rate},
}


def percentile(values: List[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank: with 50 samples p99 is the
    largest."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def ping_rtts(port: int, samples: int, proc: Proc) -> List[float]:
    """Round-trip times (ms) of `samples` inline PINGs one after the other on one
    connection, after a few not counted."""
    out: List[float] = []
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        for i in range(WARMUP + samples):
            t0 = time.perf_counter()
            s.sendall(b"PING\r\n")
            reply = b""
            for _ in range(100):
                chunk = s.recv(64)
                if not chunk:
                    raise BenchError(f"connection closed after {len(out)} samples: {proc.stderr_tail(3)}")
                reply += chunk
                if reply.endswith(b"\r\n"):
                    break
            elapsed = (time.perf_counter() - t0) * 1000
            if reply != b"+PONG\r\n":
                raise BenchError(f"unexpected reply {reply[:40]!r}")
            if i >= WARMUP:
                out.append(elapsed)
    return out


def redis_rps(port: int, n: int, watch: List[Proc], what: str) -> float:
    """Requests/s of one redis-benchmark run of RR_TEST over CLIENTS kept connections."""
    argv = ["redis-benchmark", "-h", LOOPBACK, "-p", str(port), "-c", str(CLIENTS), "-n", str(n), "-k", "1",
            "--csv", *RR_TEST]
    cp, _ = run_watched(argv, max(120.0, n / 500), what, watch)
    text = cp.stdout.decode(errors="replace")
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("test")]
    if cp.returncode != 0 or len(rows) != 1:
        raise BenchError(f"{what}: redis-benchmark rc={cp.returncode}, {len(rows)} result(s): "
                         f"{(cp.stderr.decode(errors='replace') or text)[-300:]}")
    return float(rows[0]["rps"])


def sleep_overshoot(ms: int, samples: int) -> float:
    """Median of how much later than asked time.sleep(ms) returns (ms): the
    machine's own wake-up delay, which the proxy's timer and the sleeping
    client pay too."""
    late = []
    for _ in range(samples):
        t0 = time.perf_counter()
        time.sleep(ms / 1000)
        late.append((time.perf_counter() - t0) * 1000 - ms)
    return statistics.median(late)


def download(port: int, size: int, timeout: float) -> Tuple[int, float]:
    """(bytes, seconds) of one download from the bulk upstream: from the request
    sent to the end of the stream."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got = 0
    with socket.create_connection((LOOPBACK, port), timeout=10) as s:
        s.settimeout(timeout)
        t0 = time.perf_counter()
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        deadline = t0 + timeout
        for _ in range(size // 1024 + 10_000):
            n = s.recv_into(view)
            if n == 0:
                break
            got += n
            if time.perf_counter() > deadline:
                raise BenchError(f"download of {size:,} bytes not done after {timeout:.0f}s ({got:,} so far)")
        return got, time.perf_counter() - t0


class Faults(Workload):
    """Toxics on `tapedeck proxy`, in front of redis-server (requests) and of a
    bulk upstream (downloads), every proxy started fresh. Legs of a round run
    one after the other; the cost legs run twice, in rotating order and then in
    reverse, so a drift of the machine's speed during the round weighs on every
    leg alike."""
    key = "faults"
    title = "faults"
    per_contestant = False

    def __init__(self):
        self.dir: Optional[Path] = None
        self.files: Dict[str, Path] = {}
        self.redis_port = 0
        self.bulk_ports: Dict[int, int] = {}
        self.api: Optional[bool] = None

    def metrics(self, args):
        return []

    @property
    def method_md(self):
        return FAULTS_METHOD_MD

    def section(self, ctx, names, results, keys):
        return faults_section(ctx, self)

    def environment(self, ctx, names):
        a = ctx.args
        latency = ", ".join(f"{ms} ms x {self.samples(a, n, d)}" for ms, n, d in LATENCIES)
        bandwidth = ", ".join(f"{self.payload(a, s, d) / 1e6:g} MB at {label(rate)}" for rate, s, d in RATES)
        api = "yes" if self.api else "no (this tapedeck takes no --api)"
        return [f"- faults: redis-benchmark -c {CLIENTS} -n {a.faults_n} `{' '.join(RR_TEST)}` per run of a cost "
                f"leg ({self.samples(a, *CYCLES)} runs of each a round); latency samples {latency}; bandwidth "
                f"{bandwidth}; control API leg: {api}"]

    @staticmethod
    def samples(args, normal: int, dry: int) -> int:
        return dry if args.dry_run else normal

    @staticmethod
    def payload(args, normal: int, dry: int) -> int:
        return dry if args.dry_run else normal

    def legs(self) -> List[Tuple[str, str, Optional[str], bool]]:
        return [leg for leg in COST_LEGS if self.api or not leg[3]]

    # --- setup

    def setup(self, ctx):
        if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
            raise Skip("redis-server, redis-benchmark not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="faults-", dir=ctx.tmp))
        for name, text in FAULT_FILES.items():
            path = self.dir / f"{name}.yaml"
            path.write_text(text)
            self.files[name] = path
        self.api = self.probe_api(ctx)
        if not self.api:
            skip("faults: the control API leg (this tapedeck takes no --api)")
        srv, self.redis_port = start_redis(ctx, "faults")
        ctx.shared["faults-redis"] = srv
        for rate, normal, dry in RATES:
            size = self.payload(ctx.args, normal, dry)
            if size in self.bulk_ports.values():
                continue
            # A sparse file: sendfile(2) reads its zeros without touching the disk.
            payload = self.dir / f"payload-{size}"
            with open(payload, "wb") as f:
                f.truncate(size)
            port = free_port()
            proc = Proc(f"faults-bulk-{size}", [sys.executable, str(DOWNLOAD_SERVER), str(port), str(payload)],
                        ctx.tmp)
            ctx.shared[f"faults-bulk-{size}"] = proc
            wait_listening(port, proc, 15, "download_server.py")
            self.bulk_ports[size] = port
        return self.redis_port

    def probe_api(self, ctx) -> bool:
        cp = run_cmd([ctx.tapedeck, "proxy", "--help"], timeout=30, name="tapedeck proxy --help")
        return b"--api" in cp.stdout + cp.stderr

    def teardown(self, ctx):
        for name in [n for n in ctx.shared if n.startswith("faults-")]:
            ctx.shared.pop(name).stop(grace=5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # --- one proxy

    def proxy(self, ctx, label: str, upstream: int, fault: Optional[str] = None,
              api: bool = False) -> Tuple[Proc, int]:
        argv = [ctx.tapedeck, "proxy", "--listen", f"{LOOPBACK}:0", "--upstream", f"{LOOPBACK}:{upstream}"]
        if fault is not None:
            argv += ["--fault", str(self.files[fault]), "--seed", SEED]
        if api:
            argv += ["--api", f"{LOOPBACK}:{free_port()}"]
        return start_tapedeck(ctx, f"tapedeck-proxy-faults-{label}-r{ctx.round + 1}", argv)

    @staticmethod
    def stop(proc: Proc, what: str) -> None:
        rc = proc.stop(grace=10)
        if rc != 0:
            raise BenchError(f"{what}: tapedeck proxy exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")

    # --- cost

    def cost_run(self, ctx, leg: Tuple[str, str, Optional[str], bool]) -> Tuple[float, Optional[float]]:
        """(req/s, the proxy's CPU µs per request) of one run."""
        key, _, fault, api = leg
        proc, port = self.proxy(ctx, f"cost-{key}", self.redis_port, fault, api)
        try:
            before = process_cpu_seconds(proc.pid)
            rps = redis_rps(port, ctx.args.faults_n, [proc, ctx.shared["faults-redis"]], f"faults cost {key}")
            after = process_cpu_seconds(proc.pid)
        finally:
            self.stop(proc, f"cost {key}")
        cpu = (after - before) / ctx.args.faults_n * 1e6 if before is not None and after is not None else None
        return rps, cpu

    def cost_round(self, ctx) -> None:
        """CYCLES cycles of every leg, the order rotating from cycle to cycle
        (and every other cycle reversed); a cycle's ratio is a leg's run over
        the plain proxy's run of that cycle, so the legs compared ran seconds
        apart. The round's ratio is the median of its cycles'."""
        legs = self.legs()
        cycles = self.samples(ctx.args, *CYCLES)
        runs: Dict[str, List[Optional[float]]] = {leg[0]: [] for leg in legs}
        cpus: Dict[str, List[float]] = {leg[0]: [] for leg in legs}
        for cycle in range(cycles):
            shift = (ctx.round * cycles + cycle) % len(legs)
            order = legs[shift:] + legs[:shift]
            for leg in order[::-1] if cycle % 2 else order:
                try:
                    rps, cpu = self.cost_run(ctx, leg)
                    runs[leg[0]].append(rps)
                    if cpu is not None:
                        cpus[leg[0]].append(cpu)
                except Exception as exc:
                    fail(f"faults: cost {leg[0]}: {exc}")
                    runs[leg[0]].append(None)
                pause(0.3)
        t = LegTable(ctx, "faults")
        plain = runs["plain"]
        for key, values in runs.items():
            done = [v for v in values if v is not None]
            ratios = [v / p for v, p in zip(values, plain) if v is not None and p]
            whole = len(done) == cycles and len(ratios) == cycles
            ctx.rec(t.key("cost", key), statistics.median(done) if whole else FAIL)
            ctx.rec(t.key("cost", key, "ratio"), statistics.median(ratios) if whole else FAIL)
            ctx.rec(t.key("cost", key, "runs"), values)
            ctx.rec(t.key("cost", key, "cpu"), statistics.median(cpus[key]) if cpus[key] else FAIL)
        log("  faults cost " + "; ".join(
            f"{k} " + " ".join(f"{v:,.0f}" if v is not None else "fail" for v in vs) +
            (f" ({statistics.median(cpus[k]):.1f} µs CPU/request)" if cpus[k] else "") for k, vs in runs.items()))

    # --- latency

    def latency_round(self, ctx) -> None:
        t = LegTable(ctx, "faults")
        try:
            proc, port = self.proxy(ctx, "latency-base", self.redis_port)
            try:
                base = ping_rtts(port, self.samples(ctx.args, *BASELINE_SAMPLES), proc)
            finally:
                self.stop(proc, "latency baseline")
        except Exception as exc:
            fail(f"faults: latency baseline: {exc}")
            for ms, _, _ in LATENCIES:
                for what in ("p50", "p99"):
                    ctx.rec(t.key("latency", str(ms), what), FAIL)
            return
        zero = statistics.median(base)
        ctx.rec(t.key("latency", "base", "p50"), zero)
        ctx.rec(t.key("latency", "base", "p99"), percentile(base, 99))
        shown = [f"base p50 {zero:.3f} ms"]
        for ms, normal, dry in LATENCIES:
            try:
                proc, port = self.proxy(ctx, f"latency-{ms}", self.redis_port, f"latency{ms}")
                try:
                    rtts = ping_rtts(port, self.samples(ctx.args, normal, dry), proc)
                finally:
                    self.stop(proc, f"latency {ms} ms")
            except Exception as exc:
                fail(f"faults: latency {ms} ms: {exc}")
                for what in ("p50", "p99"):
                    ctx.rec(t.key("latency", str(ms), what), FAIL)
                continue
            added = [x - zero for x in rtts]
            late = sleep_overshoot(ms, self.samples(ctx.args, *SLEEP_SAMPLES[ms]))
            ctx.rec(t.key("latency", str(ms), "sleep"), late)
            ctx.rec(t.key("latency", str(ms), "p50"), statistics.median(added))
            ctx.rec(t.key("latency", str(ms), "p99"), percentile(added, 99))
            shown.append(f"{ms} ms: +{statistics.median(added):.3f} p50, +{percentile(added, 99):.3f} p99, "
                         f"sleep late {late:.3f}")
            pause(0.2)
        log("  faults latency " + "; ".join(shown))

    # --- bandwidth

    def bandwidth_round(self, ctx) -> None:
        t = LegTable(ctx, "faults")
        for rate, normal, dry in RATES:
            size = self.payload(ctx.args, normal, dry)
            key = str(rate) if rate else "none"
            try:
                fault = f"bandwidth{rate}" if rate else None
                proc, port = self.proxy(ctx, f"bandwidth-{key}", self.bulk_ports[size], fault)
                try:
                    expected = size / (rate * 1000) if rate else 10.0
                    got, seconds = download(port, size, expected * 3 + 30)
                    peak = read_status_kib(proc.pid)["VmHWM"] / 1024
                finally:
                    self.stop(proc, f"bandwidth {key}")
                if got != size:
                    raise BenchError(f"downloaded {got:,} bytes, expected {size:,}")
            except Exception as exc:
                fail(f"faults: bandwidth {key}: {exc}")
                ctx.rec(t.key("bandwidth", key), FAIL)
                continue
            ctx.rec(t.key("bandwidth", key), got / seconds / 1e6)
            ctx.rec(t.key("bandwidth", key, "seconds"), seconds)
            ctx.rec(t.key("bandwidth", key, "rss"), peak)
            log(f"  faults bandwidth {label(rate):>9s}: {got / seconds / 1e6:,.2f} MB/s "
                f"({got / 1e6:g} MB in {seconds:.2f} s), peak RSS {peak:.0f} MiB")
            pause(0.2)

    def run_round(self, ctx):
        self.cost_round(ctx)
        self.latency_round(ctx)
        self.bandwidth_round(ctx)


def label(rate: int) -> str:
    """A bandwidth setting as MB/s (1 MB = 1,000,000 bytes, `rate` in KB/s)."""
    return f"{rate / 1000:g} MB/s" if rate else "no toxic"


def faults_section(ctx: Ctx, w: Faults) -> Optional[str]:
    t = LegTable(ctx, "faults")
    if not t.rounds():
        return None
    a = ctx.args

    def ratio_cell(key: str) -> str:
        v = t.med(t.key("cost", key, "ratio"))
        return format(v, ".3f") if v is not None else "-"

    out = ["### Faults (toxics on `tapedeck proxy`)\n",
           f"Cost of the fault stage: `redis-benchmark -c {CLIENTS} -n {a.faults_n} {' '.join(RR_TEST)}` "
           f"(connections kept) through a fresh `tapedeck proxy` in front of one redis-server, per run. A round "
           f"runs {w.samples(a, *CYCLES)} cycle(s) of every leg, in an order that rotates from cycle to cycle (every "
           f"other cycle reversed); a cycle's ratio is the leg's req/s over the plain proxy's in that cycle, a "
           f"round's the median of its cycles', and the table the median over the rounds (req/s: the median of "
           f"each round's runs, then over the rounds). Proxy CPU: the tapedeck process's user + system time "
           f"over a run, per request (median of the runs, then over the rounds).\n"]
    rows = []
    for key, name, _, api in COST_LEGS:
        if api and not w.api:
            rows.append([name, "skipped: this tapedeck takes no `--api`", "", "", "", "", ""])
            continue
        r = t.med(t.key("cost", key, "ratio"))
        target = COST_TARGETS.get(key)
        rows.append([name, t.cell(t.key("cost", key), ",.0f"), t.cell(t.key("cost", key, "cpu"), ".1f"),
                     ratio_cell(key),
                     f">= {target:.2f}" if target else "",
                     "" if target is None else ("-" if r is None else ("yes" if r >= target else "no")),
                     t.per_round(t.key("cost", key, "ratio"), ".3f")])
    out.append(LegTable.lines(["leg", "GET req/s", "proxy CPU (µs/request)", "req/s x plain", "target", "met",
                               "x plain per round"], rows))

    out.append(f"Latency: round trips of inline `PING` on one connection, one after the other, through `tapedeck "
               f"proxy` with a `latency` toxic (downstream, jitter 0), less the median round trip through the plain "
               f"proxy of the same round (p50 {t.cell(t.key('latency', 'base', 'p50'), '.3f')} ms, p99 "
               f"{t.cell(t.key('latency', 'base', 'p99'), '.3f')} ms). Medians over the rounds of each round's "
               f"percentiles (nearest rank). `time.sleep` late: how much later than the setting a plain "
               f"`time.sleep` of the client's returns on this machine (median), the wake-up every timer pays.\n")
    rows = []
    for ms, normal, dry in LATENCIES:
        p50, p99 = t.med(t.key("latency", str(ms), "p50")), t.med(t.key("latency", str(ms), "p99"))
        rows.append([f"{ms} ms", str(w.samples(a, normal, dry)),
                     t.cell(t.key("latency", str(ms), "p50"), ".3f"), t.cell(t.key("latency", str(ms), "p99"), ".3f"),
                     f"{p50 - ms:+.3f} ({(p50 - ms) / ms:+.1%})" if p50 is not None else "-",
                     f"{p99 - ms:+.3f} ({(p99 - ms) / ms:+.1%})" if p99 is not None else "-",
                     t.cell(t.key("latency", str(ms), "sleep"), ".3f"),
                     t.per_round(t.key("latency", str(ms), "p50"), ".3f")])
    out.append(LegTable.lines(["setting", "samples", "added p50 (ms)", "added p99 (ms)", "p50 error (ms)",
                               "p99 error (ms)", "`time.sleep` late (ms)", "added p50 per round"], rows))

    out.append("Bandwidth: one download from an upstream that sends the payload and closes, through `tapedeck "
               "proxy` with a `bandwidth` toxic on the downstream stream (1 MB = 1,000,000 bytes, `rate` in KB/s "
               "of 1,000 bytes), timed from the request to the end of the stream; `no toxic` is the plain proxy, "
               "the ceiling. Peak RSS: the proxy's VmHWM at the end.\n")
    rows = []
    for rate, normal, dry in RATES:
        key = str(rate) if rate else "none"
        v = t.med(t.key("bandwidth", key))
        rows.append([label(rate), f"{w.payload(a, normal, dry) / 1e6:g}", t.cell(t.key("bandwidth", key), ",.2f"),
                     format(v / (rate / 1000), ".3f") if v is not None and rate else "",
                     t.cell(t.key("bandwidth", key, "rss"), ",.0f"), t.per_round(t.key("bandwidth", key), ",.2f")])
    out.append(LegTable.lines(["setting", "payload (MB)", "measured (MB/s)", "x setting", "peak RSS (MiB)",
                               "MB/s per round"], rows))
    return "\n".join(out)


FAULTS_METHOD_MD = f"""\
- faults: every leg a fresh `tapedeck proxy --listen 127.0.0.1:0 --upstream 127.0.0.1:P` (stopped
  with SIGTERM: exit 0 expected), with `--fault FILE --seed {SEED}` for the toxics (`[]` for the
  fault stage with none) or `--api 127.0.0.1:PORT` (when `tapedeck proxy --help` lists it). Cost:
  `redis-benchmark -c {CLIENTS} -n N {' '.join(RR_TEST)} --csv` (`--faults-n`) in front of one
  redis-server; {CYCLES[0]} cycles of every leg a round, the order rotating from cycle to cycle and
  every other cycle reversed; a cycle's ratio is the leg's req/s over the plain proxy's in that
  cycle, a round's the median of its cycles'. Latency: a Python client on one connection (TCP_NODELAY)
  sends inline `PING` and waits for `+PONG`, {WARMUP} round trips not counted, then
  {', '.join(f'{n} at {ms} ms' for ms, n, _ in LATENCIES)} and {BASELINE_SAMPLES[0]} through the plain
  proxy; added latency = round trip - the plain proxy's median in that round. Bandwidth:
  `scripts/benchkit/download_server.py` sends a sparse file with sendfile(2) after the request's
  blank line, then closes; the client reads to the end (1 MiB reads) and must get every byte.
"""
