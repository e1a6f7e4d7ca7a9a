"""rules: what the `timestamps` and `uuid` presets cost `tapedeck record` and
`tapedeck replay`, against the same traffic without rules (redis-benchmark)."""

import csv
import io
import shutil
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..common import FAIL, LOOPBACK, BenchError, fail, log, pause, require_tools
from ..net import tcp_time_wait
from ..process import Proc, run_watched
from ..sysinfo import process_cpu_seconds
from ..tapes import measure_tape
from ..workload import Ctx, Workload
from .replay import Replay, start_redis, start_tapedeck, stop_replay

PRESETS = ("timestamps", "uuid")
PRESET_ARGS = [a for preset in PRESETS for a in ("--preset", preset)]
PLAIN, RULES = "plain", "rules"
TIMESTAMP = "2026-12-01T10:00:00Z"
# What `-r` makes of `key:__rand_int__` and `ts:1__rand_int__`, fixed: replay
# of a tape without rules matches only requests it recorded.
DIGITS_KEY = "key:000000012345"
EPOCH_KEY = "ts:1000000012345"
RANDOM_EPOCH_KEY = "ts:1__rand_int__"
RULES_TARGET = 0.90     # req/s with the presets, x the same without rules
PIPELINED = 16
PIPELINED_SCALE = 4     # -P 16 runs this many times the requests of -P 1


@dataclass(frozen=True)
class Command:
    """One redis-benchmark command: what follows the common options (-h -p
    -c -n -P -k --csv), and the rows its CSV lines are reported as, in order."""
    args: Tuple[str, ...]
    rows: Tuple[str, ...]


@dataclass(frozen=True)
class Traffic:
    """What a pair of legs sends: the same commands without rules (`plain`)
    and with the presets (`rules`). A traffic with only a rules leg is
    compared with the plain leg of `baseline`."""
    key: str
    label: str
    commands: Tuple[Command, ...]
    pipeline: int = 1
    legs: Tuple[str, ...] = (PLAIN, RULES)
    baseline: Optional[str] = None

    @property
    def rows(self) -> List[str]:
        return [row for command in self.commands for row in command.rows]


PING_SET_GET = Command(("-t", "ping,set,get"), ("PING_INLINE", "PING_MBULK", "SET", "GET"))
PING_SET_GET_APART = tuple(Command(("-t", test.lower()), (test,)) for test in PING_SET_GET.rows)

RECORD_TRAFFIC = [
    Traffic("plain", "`-t ping,set,get`", (PING_SET_GET,)),
    Traffic("pipelined", f"`-t ping,set,get -P {PIPELINED}`", (PING_SET_GET,), pipeline=PIPELINED),
    Traffic("digits", "`-r 100000 -t set,get`: keys `key:` + 12 random digits",
            (Command(("-r", "100000", "-t", "set,get"), ("SET", "GET")),)),
    Traffic("timestamps", f"`-r 100000 SET {RANDOM_EPOCH_KEY} {TIMESTAMP}`, then `GET`",
            (Command(("-r", "100000", "SET", RANDOM_EPOCH_KEY, TIMESTAMP), ("SET",)),
             Command(("-r", "100000", "GET", RANDOM_EPOCH_KEY), ("GET",)))),
]

REPLAY_TRAFFIC = [
    Traffic("plain", "`-t ping,set,get`", PING_SET_GET_APART),
    Traffic("pipelined", f"`-t ping,set,get -P {PIPELINED}`", PING_SET_GET_APART, pipeline=PIPELINED),
    Traffic("digits", f"`SET {DIGITS_KEY} xxx`, then `GET`: the bytes of `-r`, fixed",
            (Command(("SET", DIGITS_KEY, "xxx"), ("SET",)), Command(("GET", DIGITS_KEY), ("GET",)))),
    Traffic("timestamps", f"`SET {EPOCH_KEY} {TIMESTAMP}`, then `GET`",
            (Command(("SET", EPOCH_KEY, TIMESTAMP), ("SET",)), Command(("GET", EPOCH_KEY), ("GET",)))),
    Traffic("changing", f"`-r 100000 SET {RANDOM_EPOCH_KEY} {TIMESTAMP}`, then `GET`: a new key every "
            f"request, replayable only with the rules",
            (Command(("-r", "100000", "SET", RANDOM_EPOCH_KEY, TIMESTAMP), ("SET",)),
             Command(("-r", "100000", "GET", RANDOM_EPOCH_KEY), ("GET",))),
            legs=(RULES,), baseline="timestamps"),
]


def rkey(mode: str, traffic: str, leg: str, what: str) -> str:
    return f"rules_{mode}_{traffic}_{leg}_{what}"


class Rules(Workload):
    """What rules cost: redis-benchmark requests/s through `tapedeck record`
    and `tapedeck replay`, each without rules and with `--preset timestamps
    --preset uuid`, in the same round, the two legs of a pair one after the
    other (which goes first alternates from round to round).

    record: `redis-benchmark -c 50` (connections kept) through a fresh
    `tapedeck record` in front of a fresh redis-server, for every leg.

    replay: as the replay workload does it, `redis-benchmark -k 0 -c 50` (a new
    connection for every request) against `tapedeck replay --repeat` of a tape
    recorded (once, in the first round) from the same commands through
    `tapedeck record` with the leg's rules; replay applies the rules the tape
    was recorded with. Each test runs as its own command against a fresh
    server, in commands of at most --replay-chunk connections (see the replay
    workload: TIME_WAIT). A run with a mismatch does not count."""
    key = "rules"
    title = "rules"
    per_contestant = False
    CLIENTS = 50

    def __init__(self):
        self.tape_dir: Optional[Path] = None
        self.tapes: Dict[Tuple[str, str], Path] = {}

    def metrics(self, args):
        return []

    def setup(self, ctx):
        require_tools("redis-server", "redis-benchmark")
        self.drop_tapes()
        return 0

    def teardown(self, ctx):
        self.drop_tapes()

    def drop_tapes(self) -> None:
        if self.tape_dir is not None:
            shutil.rmtree(self.tape_dir, ignore_errors=True)
        self.tape_dir, self.tapes = None, {}

    @property
    def method_md(self):
        return RULES_METHOD_MD

    def section(self, ctx, names, results, keys):
        return rules_section(ctx)

    def environment(self, ctx, names):
        a = ctx.args
        return [f"- rules: redis-benchmark -c {self.CLIENTS}, -n {a.rules_n} per test through "
                f"`tapedeck record` (x{PIPELINED_SCALE} with -P {PIPELINED}), -k 0 -n "
                f"{a.rules_replay_n} per test against `tapedeck replay` (x{PIPELINED_SCALE} with "
                f"-P {PIPELINED}); rules: `{' '.join(PRESET_ARGS)}`"]

    # --- sizes

    @staticmethod
    def requests(n: int, traffic: Traffic) -> int:
        return n * (PIPELINED_SCALE if traffic.pipeline > 1 else 1)

    def plan(self, ctx, traffic: Traffic) -> List[Tuple[Command, int]]:
        """The replay commands of one leg, (command, -n), each against a fresh
        server: every test apart, in pieces of at most --replay-chunk
        connections; with --replay-chunk 0 (a dry run), `-t ping,set,get` as
        one command."""
        n = self.requests(ctx.args.rules_replay_n, traffic)
        chunk = Replay.chunk(ctx.args)
        if chunk == 0:
            if traffic.commands == PING_SET_GET_APART:
                return [(PING_SET_GET, n)]
            return [(c, n) for c in traffic.commands]
        parts = -(-n // (chunk * traffic.pipeline))
        sizes = [n // parts + (1 if i < n % parts else 0) for i in range(parts)]
        return [(c, s) for c in traffic.commands for s in sizes]

    # --- the client

    def bench(self, port: int, command: Command, n: int, pipeline: int, keepalive: bool,
              what: str, watch: List[Proc]) -> Dict[str, float]:
        """One redis-benchmark command: req/s per row."""
        argv = ["redis-benchmark", "-h", LOOPBACK, "-p", str(port), "-c", str(self.CLIENTS),
                "-n", str(n), "-P", str(pipeline), "-k", "1" if keepalive else "0", "--csv",
                *command.args]
        cp, _ = run_watched(argv, max(300.0, n * len(command.rows) / 300), what, watch)
        text = cp.stdout.decode(errors="replace")
        lines = [r for r in csv.DictReader(io.StringIO(text)) if r.get("test")]
        if cp.returncode != 0 or len(lines) != len(command.rows):
            raise BenchError(f"{what}: redis-benchmark rc={cp.returncode}, {len(lines)} result(s) for "
                             f"{len(command.rows)} test(s): "
                             f"{(cp.stderr.decode(errors='replace') or text)[-300:]}")
        return {row: float(line["rps"]) for row, line in zip(command.rows, lines)}

    # --- record

    def record_leg(self, ctx, traffic: Traffic, leg: str) -> None:
        """One leg through a fresh `tapedeck record` in front of a fresh
        redis-server, connections kept."""
        tag = f"{traffic.key}-{leg}-r{ctx.round + 1}"
        n = self.requests(ctx.args.rules_n, traffic)
        d = Path(tempfile.mkdtemp(prefix=f"rules-record-{tag}-", dir=ctx.tmp))
        out: Dict[str, float] = {}
        cpu = 0.0
        try:
            srv, rport = start_redis(ctx, f"rules-record-{tag}")
            try:
                tape = d / "bench.tape"
                rec, port = start_tapedeck(
                    ctx, f"tapedeck-record-rules-{tag}",
                    [ctx.tapedeck, "record", "--listen", f"{LOOPBACK}:0", "--upstream",
                     f"{LOOPBACK}:{rport}", "--tape", str(tape)] + (PRESET_ARGS if leg == RULES else []))
                try:
                    for command in traffic.commands:
                        before = process_cpu_seconds(rec.pid)
                        out.update(self.bench(port, command, n, traffic.pipeline, True,
                                              f"record {traffic.key} {leg}", [rec, srv]))
                        after = process_cpu_seconds(rec.pid)
                        if before is not None and after is not None:
                            cpu += after - before
                finally:
                    rc = rec.stop(grace=60)
                if rc != 0:
                    raise BenchError(f"tapedeck record exited with {rc} after SIGTERM: {rec.stderr_tail(5)}")
                check_rules(tape, leg)
            finally:
                srv.stop(grace=5)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        for row, rps in out.items():
            ctx.rec(rkey("record", traffic.key, leg, row), rps)
        ctx.rec(rkey("record", traffic.key, leg, "cpu"), cpu / (n * len(traffic.rows)) * 1e6)
        log(f"  rules record {traffic.key:10s} {leg:5s} " +
            ", ".join(f"{row}={v:,.0f}/s" for row, v in out.items()) +
            f"; recorder CPU {cpu / (n * len(traffic.rows)) * 1e6:.1f} µs/request")

    # --- replay

    def record_tape(self, ctx, traffic: Traffic, leg: str) -> Path:
        """Record the tape a replay leg serves: the leg's commands with -k 0
        through `tapedeck record` (with the leg's rules) in front of a fresh
        redis-server."""
        if self.tape_dir is None:
            self.tape_dir = Path(tempfile.mkdtemp(prefix="rules-tapes-", dir=ctx.tmp))
        path = self.tape_dir / f"{traffic.key}-{leg}.tape"
        tag = f"{traffic.key}-{leg}"
        srv, rport = start_redis(ctx, f"rules-tape-{tag}")
        try:
            rec, port = start_tapedeck(
                ctx, f"tapedeck-record-rules-tape-{tag}",
                [ctx.tapedeck, "record", "--listen", f"{LOOPBACK}:0", "--upstream", f"{LOOPBACK}:{rport}",
                 "--tape", str(path), "--overwrite"] + (PRESET_ARGS if leg == RULES else []))
            try:
                connections = 0
                for command, n in self.plan(ctx, traffic):
                    self.bench(port, command, n, traffic.pipeline, False, f"tape {tag}", [rec, srv])
                    connections += -(-n // traffic.pipeline) * len(command.rows)
            finally:
                rc = rec.stop(grace=60)
        finally:
            srv.stop(grace=5)
        if rc != 0:
            raise BenchError(f"tapedeck record (tape {tag}) exited with {rc}: {rec.stderr_tail(5)}")
        check_rules(path, leg)
        m = measure_tape(path)
        # redis-benchmark -k 0 reconnects after each batch of -P requests; a
        # client's last batch may be shorter, so there are at least this many.
        if m["sessions"] < connections:
            raise BenchError(f"tape {tag} holds {m['sessions']} sessions, expected at least {connections}")
        ctx.rec(rkey("replay", traffic.key, leg, "sessions"), m["sessions"])
        log(f"  rules tape {tag}: {m['sessions']:,} sessions, {m['size'] / 1e6:.1f} MB")
        self.tapes[(traffic.key, leg)] = path
        return path

    def replay_leg(self, ctx, traffic: Traffic, leg: str) -> None:
        """Every command of the leg against a fresh `tapedeck replay --repeat`
        of the leg's tape: req/s per row = its requests / the commands'
        summed durations."""
        tape = self.tapes[(traffic.key, leg)]
        reqs: Dict[str, int] = {}
        secs: Dict[str, float] = {}
        cpu, listen, mism, conns = 0.0, [], 0, 0
        for i, (command, n) in enumerate(self.plan(ctx, traffic)):
            label = f"tapedeck-replay-rules-{traffic.key}-{leg}-r{ctx.round + 1}-{i + 1}"
            report = ctx.tmp / f"{label}.report.json"
            t0 = time.monotonic()
            proc, port = start_tapedeck(
                ctx, label, [ctx.tapedeck, "replay", "--tape", str(tape), "--listen", f"{LOOPBACK}:0",
                             "--repeat", "--drain-timeout", "2s", "--report", str(report)])
            listen.append(time.monotonic() - t0)
            try:
                before = process_cpu_seconds(proc.pid)
                res = self.bench(port, command, n, traffic.pipeline, False,
                                 f"replay {traffic.key} {leg}", [proc])
                after = process_cpu_seconds(proc.pid)
                if before is not None and after is not None:
                    cpu += after - before
            finally:
                verdict = stop_replay(proc, report)
            mism += verdict.mismatches
            conns += verdict.connections
            if verdict.mismatches:
                fail(f"rules: replay {traffic.key} {leg}: {verdict.mismatches} mismatched connection(s) "
                     f"of {verdict.connections}; round {ctx.round + 1} does not count. "
                     f"First: {verdict.first_mismatch}")
            for row, rps in res.items():
                reqs[row] = reqs.get(row, 0) + n
                secs[row] = secs.get(row, 0.0) + n / rps
        total = sum(reqs.values())
        ctx.rec(rkey("replay", traffic.key, leg, "mismatches"), mism)
        ctx.rec(rkey("replay", traffic.key, leg, "connections"), conns)
        ctx.rec(rkey("replay", traffic.key, leg, "listen"), statistics.median(listen))
        ctx.rec(rkey("replay", traffic.key, leg, "cpu"), cpu / total * 1e6)
        out = {row: reqs[row] / secs[row] for row in reqs}
        for row, rps in out.items():
            ctx.rec(rkey("replay", traffic.key, leg, row), rps if not mism else FAIL)
        log(f"  rules replay {traffic.key:10s} {leg:5s} " +
            ", ".join(f"{row}={v:,.0f}/s" for row, v in out.items()) +
            f"; {conns:,} connections, {mism} mismatched; replay CPU {cpu / total * 1e6:.1f} µs/request; "
            f"listening after {statistics.median(listen):.2f} s")

    # --- the round

    def run_round(self, ctx):
        # The tapes first: recording them leaves two TIME_WAIT sockets per
        # request, which slow every connect() for a minute; most are gone by
        # the time replay is timed, after the record legs (which keep their
        # connections).
        for traffic in REPLAY_TRAFFIC:
            for leg in traffic.legs:
                if (traffic.key, leg) in self.tapes or ctx.round > 0:
                    continue
                try:
                    self.record_tape(ctx, traffic, leg)
                except Exception as exc:
                    fail(f"rules: recording the replay tape {traffic.key} {leg}: {exc}")
        flip = ctx.round % 2 == 1
        for mode, traffics, leg_fn in (("record", RECORD_TRAFFIC, self.record_leg),
                                       ("replay", REPLAY_TRAFFIC, self.replay_leg)):
            for traffic in traffics:
                legs = list(reversed(traffic.legs)) if flip else list(traffic.legs)
                for leg in legs:
                    tw = tcp_time_wait()
                    if tw is not None:
                        old = ctx.record.get("rules_tw_max", {}).get(ctx.round, 0)
                        ctx.rec("rules_tw_max", max(old, tw))
                    try:
                        if mode == "replay" and (traffic.key, leg) not in self.tapes:
                            raise BenchError("no tape")
                        leg_fn(ctx, traffic, leg)
                    except Exception as exc:
                        fail(f"rules: {mode} {traffic.key} {leg}: {exc}")
                        for row in traffic.rows:
                            ctx.rec(rkey(mode, traffic.key, leg, row), FAIL)
                    pause(0.3)

def check_rules(tape: Path, leg: str) -> None:
    """The tape lists the presets' rules (the rules leg) or none (plain)."""
    con = sqlite3.connect(f"file:{tape}?mode=ro", uri=True, timeout=10)
    try:
        has = con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'rules'").fetchone()
        presets = {r[0] for r in con.execute("SELECT DISTINCT preset FROM rules")} if has else set()
    finally:
        con.close()
    want = set(PRESETS) if leg == RULES else set()
    if presets != want:
        raise BenchError(f"tape {tape.name}: rules of presets {sorted(presets)}, expected {sorted(want)}")


def rules_section(ctx: Ctx) -> str:
    rounds = sorted({r for k, v in ctx.record.items() if k.startswith("rules_") for r in v})

    def vals(key):
        return ctx.record.get(key, {})

    def med(key):
        nums = [v for v in vals(key).values() if isinstance(v, (int, float))]
        return statistics.median(nums) if nums else None

    def per_round(key, spec):
        v = vals(key)
        return " / ".join(format(v[r], spec) if isinstance(v.get(r), (int, float)) else str(v.get(r, "-"))
                          for r in rounds) or "-"

    def num(v, spec):
        return format(v, spec) if v is not None else FAIL

    a = ctx.args
    out = ["### Rules (`--preset timestamps --preset uuid`)\n",
           f"redis-benchmark requests/s through `tapedeck record` and against `tapedeck replay`, without "
           f"rules and with `{' '.join(PRESET_ARGS)}`, in the same round: the two legs of a pair run one "
           f"after the other, in an order that alternates from round to round. record: `redis-benchmark "
           f"-c {Rules.CLIENTS} -n {a.rules_n}` per test (connections kept; x{PIPELINED_SCALE} requests with "
           f"`-P {PIPELINED}`) through a fresh `tapedeck record` in front of a fresh redis-server. replay: "
           f"`redis-benchmark -k 0 -c {Rules.CLIENTS} -n {a.rules_replay_n}` per test (a new connection for "
           f"every request; x{PIPELINED_SCALE} with `-P {PIPELINED}`) against `tapedeck replay --repeat` of a "
           f"tape recorded from the same commands with the leg's rules (replay applies the rules the tape "
           f"holds), each test against a fresh server. Replay numbers count only from runs with no "
           f"mismatch. CPU: the tapedeck process's user + system time over the commands, per request.\n"]
    head = ["mode", "traffic", "test", "no rules (req/s)", "rules (req/s)", "rules/no rules",
            "no rules per round", "rules per round"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|" + "|".join(["---:"] * (len(head) - 3)) + "|"]
    ratios: List[Tuple[str, float]] = []
    missing = 0
    for mode, traffics in (("record", RECORD_TRAFFIC), ("replay", REPLAY_TRAFFIC)):
        for t in traffics:
            base = t.baseline or t.key
            for i, row in enumerate(t.rows + ["cpu"]):
                plain_key, rules_key = rkey(mode, base, PLAIN, row), rkey(mode, t.key, RULES, row)
                p, r = med(plain_key), med(rules_key)
                spec = ".1f" if row == "cpu" else ",.0f"
                ratio = r / p if p and r is not None else None
                if row == "cpu":
                    name = "tapedeck CPU (µs/request)"
                else:
                    name = row
                    if ratio is None:
                        missing += 1
                    else:
                        ratios.append((f"{mode} {t.key} {row}", ratio))
                base_note = f" (no rules: the `{base}` row's)" if t.baseline else ""
                what = f"`{t.key}`: {t.label}{base_note}" if i == 0 else ""
                lines.append(f"| {mode if i == 0 else ''} | {what} | {name} | {num(p, spec)} | {num(r, spec)} | "
                             f"{format(ratio, '.2f') if ratio is not None else '-'} | "
                             f"{per_round(plain_key, spec)} | {per_round(rules_key, spec)} |")
    out.append("\n".join(lines) + "\n")

    notes = []
    for t in REPLAY_TRAFFIC:
        for leg in t.legs:
            s, lt = med(rkey("replay", t.key, leg, "sessions")), med(rkey("replay", t.key, leg, "listen"))
            if s is not None:
                notes.append(f"`{t.key}` {leg}: {s:,.0f} sessions" +
                             (f", listening after {lt:.2f} s" if lt is not None else ""))
    if notes:
        out.append("Replay tapes (median time from start to the `listening` line): " + "; ".join(notes) + ".")
    tw = [v for v in vals("rules_tw_max").values() if isinstance(v, (int, float))]
    if tw:
        out.append(f"Sockets in TIME_WAIT (all ports) before a leg: up to {max(tw):,.0f}.")
    out.append("")

    mism = {k: v for k, v in ctx.record.items() if k.startswith("rules_replay_") and k.endswith("_mismatches")}
    total = sum(x for v in mism.values() for x in v.values() if isinstance(x, int))
    worst = min(ratios, key=lambda kv: kv[1]) if ratios else None
    below = [name for name, x in ratios if x < RULES_TARGET]

    def yn(ok):
        return "-" if ok is None else ("yes" if ok else "no")

    targets = [
        ("requests/s with the presets / without rules, every row", f">= {RULES_TARGET:.2f}",
         (f"worst {worst[1]:.2f} ({worst[0]})" + (f"; below: {', '.join(below)}" if below else ""))
         if worst else "not measured",
         yn(None if worst is None or missing else not below)),
        ("replay mismatches", "0", f"{total:,}" if mism else "not measured", yn(None if not mism else total == 0)),
    ]
    out += ["#### Targets\n",
            "\n".join(["| target | wanted | measured | met |", "|---|---|---|:---:|"] +
                      [f"| {x} | {w} | {m} | {ok} |" for x, w, m, ok in targets]) + "\n",
            f"Medians over {len(rounds)} round(s); per-round values in round order.\n"]
    return "\n".join(out)


RULES_METHOD_MD = f"""\
- rules: pairs of legs, the same redis-benchmark commands without rules and with
  `{' '.join(PRESET_ARGS)}`, one right after the other; which goes first alternates from
  round to round. record: `redis-benchmark -c 50 -n N -P 1|{PIPELINED} --csv` (connections
  kept) through a fresh `tapedeck record` (its tape in a temp dir) in front of a fresh
  `redis-server`; the recorder must exit 0 on SIGTERM, and its tape must list the presets'
  rules (or none). Traffic: `-t ping,set,get`, the same with `-P {PIPELINED}`, `-r 100000 -t
  set,get` (keys `key:` + 12 random digits: digit runs, which the timestamps preset's cheap
  test lets through to its expressions) and `-r 100000 SET {RANDOM_EPOCH_KEY} {TIMESTAMP}` /
  `GET` (a 13-digit key the epoch rule matches, and an ISO 8601 value). replay: once, each
  leg's commands with `-k 0` through `tapedeck record` with the leg's rules make its tape;
  each round then runs them with `redis-benchmark -k 0 -c 50` against `tapedeck replay
  --tape T --repeat --drain-timeout 2s --report R`, each test against a fresh server (in
  commands of at most `--replay-chunk` connections, as in the replay workload). Replay
  matches only the requests it recorded, so the `-r` traffic becomes fixed requests with the
  same bytes (`SET {DIGITS_KEY} xxx`, `SET {EPOCH_KEY} {TIMESTAMP}`), and the `-r` traffic
  itself (a new key every request) is replayed with the rules only and compared with the
  fixed requests without rules. Every replay server must exit 0 on SIGTERM; a run whose report
  lists a mismatch does not count. CPU per request: utime + stime of the tapedeck process
  (`/proc/PID/stat`) over the commands, / their requests.
"""
