"""dns: queries per second answered by `tapedeck replay` from a tape of DNS
recorded with `tapedeck record --dns`, against dnsmasq answering the same
queries live (scripts/udpload.c's DNS client)."""

import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

from ..common import FAIL, LOOPBACK, BenchError, fail, log, pause, require_tools, skip
from ..net import free_udp_port, wait_udp_bound
from ..process import Proc
from ..sysinfo import tool_version
from ..workload import Ctx, Workload
from .replay import start_tapedeck
from .udp import LOSS_TIMEOUT_MS, LegTable, build_udpload, relay_cpu, run_client, tapedeck_udp_missing

ZONE = "bench.test"
HOSTS = 40      # hostN: A and AAAA
MAIL = 5        # mailN: MX
TEXT = 5        # txtN: TXT
MISSING = 5     # nopeN: A, answered NXDOMAIN
FLOWS, WINDOW = 4, 16
LEGS = ("dnsmasq", "replay")
LEG_NAMES = {"dnsmasq": "dnsmasq (live)", "replay": "tapedeck replay"}
TARGET = 1.0  # replay / dnsmasq, at least
# Flags beyond the route: the recording treats the route as DNS (the tape
# remembers it, so replay answers by question, the last recorded answer to a
# question again once its answers run out).
RECORD_FLAGS = ["--dns"]
REPLAY_FLAGS: List[str] = []


def zone_args() -> List[str]:
    args = [f"--local=/{ZONE}/"]
    for i in range(HOSTS):
        args.append(f"--host-record=host{i}.{ZONE},10.0.{i // 250}.{i % 250 + 1},fd00::{i + 1:x}")
    for i in range(MAIL):
        args.append(f"--mx-host=mail{i}.{ZONE},host{i}.{ZONE},10")
    for i in range(TEXT):
        args.append(f"--txt-record=txt{i}.{ZONE},v=bench {i}")
    return args


def queries() -> List[str]:
    out = []
    for i in range(HOSTS):
        out += [f"host{i}.{ZONE} A", f"host{i}.{ZONE} AAAA"]
    out += [f"mail{i}.{ZONE} MX" for i in range(MAIL)]
    out += [f"txt{i}.{ZONE} TXT" for i in range(TEXT)]
    out += [f"nope{i}.{ZONE} A" for i in range(MISSING)]
    return out


def check_answers(res: dict, what: str) -> None:
    """Every reply must match its query and be what the zone says: NOERROR
    with answers, or NXDOMAIN for the missing names, in the file's mix."""
    if res["received"] == 0:
        raise BenchError(f"{what}: no query answered: {res}")
    bad = {k: res[k] for k in ("mismatched", "other_rcode", "nodata") if res[k]}
    if bad:
        raise BenchError(f"{what}: wrong answers {bad}: {res}")
    share = res["nxdomain"] / res["received"]
    want = MISSING / len(queries())
    if abs(share - want) > 0.02:
        raise BenchError(f"{what}: {share:.1%} NXDOMAIN answers, the zone gives {want:.1%}: {res}")


class Dns(Workload):
    key = "dns"
    title = "DNS queries/s"
    per_contestant = False

    def __init__(self):
        self.dir: Optional[Path] = None
        self.port = 0
        self.tape: Optional[Path] = None
        self.legs: List[str] = []
        self.no_tape: Optional[str] = None  # why the replay leg cannot run

    def metrics(self, args):
        return []

    @property
    def method_md(self):
        return DNS_METHOD_MD

    def section(self, ctx, names, results, keys):
        return dns_section(ctx, self.legs, self.no_tape)

    def environment(self, ctx, names):
        return [f"- dns: udpload dns {ctx.args.udp_duration:g} s per leg, {FLOWS} flows x {WINDOW} queries "
                f"in flight, {len(queries())} queries; dnsmasq "
                f"`{tool_version(['dnsmasq', '--version'], lambda s: s.split()[2])}`"]

    def setup(self, ctx):
        require_tools("dnsmasq")
        build_udpload(ctx)
        self.dir = Path(tempfile.mkdtemp(prefix="dns-", dir=ctx.tmp))
        names = self.dir / "queries.txt"
        names.write_text("\n".join(queries()) + "\n")
        self.port = free_udp_port(tcp_too=True)
        argv = ["dnsmasq", "--keep-in-foreground", f"--port={self.port}", f"--listen-address={LOOPBACK}",
                "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--log-facility=-", f"--pid-file={self.dir / 'dnsmasq.pid'}"]
        if os.geteuid() == 0:
            argv.append("--user=root")  # as root dnsmasq would switch to nobody
        srv = Proc(f"dnsmasq-{self.port}", argv + zone_args(), ctx.tmp)
        ctx.shared["dnsmasq"] = srv
        wait_udp_bound(self.port, srv, 15, "dnsmasq")
        ctx.ports["dnsmasq"] = self.port
        check_answers(self.one_pass(ctx, self.port, [srv]), "dnsmasq, one pass")
        self.legs = list(LEGS)
        self.no_tape = tapedeck_udp_missing(ctx, self.port)
        if self.no_tape:
            if ctx.dry_run:
                skip(f"dns: replay: {self.no_tape}")
                self.legs.remove("replay")
            return self.port
        try:
            self.record(ctx)
        except Exception as exc:
            self.no_tape = f"no tape recorded: {exc}"
            fail(f"dns: {self.no_tape}")
        return self.port

    def one_pass(self, ctx, port: int, watch: List[Proc]) -> dict:
        """Every query of the file once, in order, one at a time."""
        n = len(queries())
        res = run_client(ctx, [ctx.udpload_bin, "dns", str(port), "30", "1", str(self.dir / "queries.txt"),
                               "1", str(n)], 30, watch, "udpload dns (one pass)")
        if res["received"] != n or res["lost"]:
            raise BenchError(f"one pass: {res['received']} of {n} queries answered, {res['lost']} lost")
        return res

    def record(self, ctx) -> None:
        """The tape: one pass of the queries through `tapedeck record --dns`."""
        tape = self.dir / "dns.tape"
        proc, port = start_tapedeck(ctx, "tapedeck-record-dns",
                                    [ctx.tapedeck, "record", "--tape", str(tape), "--listen", f"udp:{LOOPBACK}:0",
                                     "--upstream", f"udp:{LOOPBACK}:{self.port}", *RECORD_FLAGS])
        try:
            check_answers(self.one_pass(ctx, port, [ctx.shared["dnsmasq"], proc]), "through tapedeck record")
        finally:
            rc = proc.stop(grace=30)
        if rc != 0:
            raise BenchError(f"tapedeck record exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")
        self.tape = tape
        log(f"  dns: recorded {len(queries())} queries, tape {tape.stat().st_size:,} bytes")

    def teardown(self, ctx):
        srv = ctx.shared.pop("dnsmasq", None)
        if srv is not None:
            srv.stop(grace=5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def start(self, ctx, leg: str) -> Tuple[Proc, int]:
        if leg == "dnsmasq":
            return ctx.shared["dnsmasq"], self.port
        if self.tape is None:
            raise BenchError(self.no_tape or "no tape")
        return start_tapedeck(ctx, f"tapedeck-replay-dns-r{ctx.round + 1}",
                              [ctx.tapedeck, "replay", "--tape", str(self.tape), "--listen",
                               f"udp:{LOOPBACK}:0", *REPLAY_FLAGS])

    def leg(self, ctx, leg: str) -> None:
        t = LegTable(ctx, "dns")
        keys = [t.key(leg, "q", w) for w in ("", "cpu", "p99", "lost")]
        proc = None
        try:
            proc, port = self.start(ctx, leg)
            watch = [proc]
            before = relay_cpu(proc)
            res = run_client(ctx, [ctx.udpload_bin, "dns", str(port), f"{ctx.args.udp_duration:g}", str(WINDOW),
                                   str(self.dir / "queries.txt"), str(FLOWS)],
                             ctx.args.udp_duration, watch, "udpload dns")
            after = relay_cpu(proc)
            check_answers(res, LEG_NAMES[leg])
            ctx.rec(t.key(leg, "q"), res["qps"])
            ctx.rec(t.key(leg, "q", "p99"), res["p99_us"])
            ctx.rec(t.key(leg, "q", "lost"), res["lost"] / max(1, res["lost"] + res["received"]))
            if before is not None and after is not None:
                ctx.rec(t.key(leg, "q", "cpu"), (after - before) / res["received"] * 1e6)
            log(f"  dns {leg:8s} {res['qps']:,.0f} queries/s, p50 {res['p50_us']:.0f} µs, "
                f"p99 {res['p99_us']:.0f} µs, lost {res['lost']}, late {res['late']}, "
                f"NOERROR {res['noerror']}, NXDOMAIN {res['nxdomain']}")
        except Exception as exc:
            fail(f"dns: {leg}: {exc}")
            for k in keys:
                if ctx.record.get(k, {}).get(ctx.round) is None:
                    ctx.rec(k, FAIL)
        finally:
            if leg == "replay" and proc is not None:
                rc = proc.stop(grace=30)
                if rc != 0:
                    fail(f"dns: tapedeck replay exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")

    def run_round(self, ctx):
        shift = ctx.round % len(self.legs)
        for leg in self.legs[shift:] + self.legs[:shift]:
            self.leg(ctx, leg)
            pause(0.5)


def dns_section(ctx: Ctx, legs: List[str], no_tape: Optional[str]) -> Optional[str]:
    t = LegTable(ctx, "dns")
    if not t.rounds():
        return None
    shown = [leg for leg in LEGS if leg in legs]
    n = len(queries())
    out = ["### DNS (`tapedeck replay` of a tape recorded with `--dns`)\n",
           f"Queries per second answered by dnsmasq (live, from its configuration: {HOSTS} names with A and "
           f"AAAA records, {MAIL} with MX, {TEXT} with TXT, `--local=/{ZONE}/`) and by `tapedeck replay` "
           f"(no upstream) from a tape of the same {n} queries recorded once through `tapedeck record --dns` in "
           f"front of that dnsmasq. The client (`udpload dns`) keeps {WINDOW} queries in flight on each of "
           f"{FLOWS} flows for {ctx.args.udp_duration:g} s, going round the {n} queries ({MISSING} of them for "
           f"missing names: NXDOMAIN), with random transaction ids; every reply must carry its query's id and "
           f"question and the zone's answer. Server CPU: user + system time of dnsmasq or of the replay "
           f"process over the run, per query.\n"]
    rows = [["queries/s"] + [t.cell(t.key(leg, "q"), ",.0f") for leg in shown],
            ["server CPU per query (µs)"] + [t.cell(t.key(leg, "q", "cpu"), ".2f") for leg in shown],
            ["p99 round trip (µs)"] + [t.cell(t.key(leg, "q", "p99"), ",.0f") for leg in shown],
            ["lost"] + [t.cell(t.key(leg, "q", "lost"), ".2%") for leg in shown]]
    head = ["measurement"] + [LEG_NAMES[l] for l in shown]
    out.append(LegTable.lines(head, rows))
    if len(shown) == 2:
        r = t.ratio(t.key("replay", "q"), t.key("dnsmasq", "q"))
        out.append(LegTable.lines(["ratio of medians", "value", "target", "met"],
                                  [["replay / dnsmasq, queries/s", format(r, ".2f") if r is not None else "-",
                                    f">= {TARGET:.1f}", "-" if r is None else ("yes" if r >= TARGET else "no")]]))
    out += ["Per round, in round order:\n",
            LegTable.lines(head, [["queries/s"] + [t.per_round(t.key(leg, "q"), ",.0f") for leg in shown]])]
    if no_tape:
        out.append(f"The replay leg could not run: {no_tape}.\n")
    return "\n".join(out)


DNS_METHOD_MD = f"""\
- dns: dnsmasq (`--keep-in-foreground --port=P --listen-address=127.0.0.1 --bind-interfaces
  --no-resolv --no-hosts --conf-file=/dev/null --log-facility=-`, `--user=root` when run as root,
  default cache) serves a zone from its command line: `--local=/{ZONE}/`, {HOSTS} `--host-record`s
  (A and AAAA), {MAIL} `--mx-host`s and {TEXT} `--txt-record`s. The queries: A and AAAA of each
  host, MX and TXT of the others and A of {MISSING} missing names ({len(queries())} in all). In
  setup, `udpload dns` asks each of them once, one at a time, straight at dnsmasq (checking the
  answers) and then through `tapedeck record --tape T --listen udp:127.0.0.1:0 --upstream
  udp:127.0.0.1:P {' '.join(RECORD_FLAGS)}`, stopped with SIGTERM (exit 0 expected). Each round
  measures `udpload dns PORT SECONDS {WINDOW} QUERIES {FLOWS}` ({FLOWS} sockets, {WINDOW} queries in
  flight on each, random ids, the queries round robin; a query unanswered after {LOSS_TIMEOUT_MS}
  ms counts as lost and is asked again with a new id) against dnsmasq and against `tapedeck replay
  --tape T --listen udp:127.0.0.1:0{''.join(' ' + f for f in REPLAY_FLAGS)}` (no upstream; started
  fresh, stopped with SIGTERM: exit 0 expected), in rotating order. A run counts only if every reply carried its query's id,
  QR and question and the zone's rcode (NOERROR with answers; NXDOMAIN for the missing names, in
  their share of the mix). Target: replay / dnsmasq >= {TARGET:.1f}.
"""
