"""The command line: options, choosing contestants and workloads, the rounds,
and writing the report."""

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from . import common, microbench
from .common import FAIL, NA, Skip, fail, log, skip, warn
from .contestants import CONTESTANTS, SPECS, Relay
from .process import Proc
from .report import HOW_TO_RUN_MD, METHOD_MD, display_arg, environment_md, raw_table, results_table
from .sysinfo import cpu_busy_percent, fs_type, loadavg, raise_nofile
from .workload import Ctx, Metric
from .workloads import WORKLOAD_BY_KEY, WORKLOADS
from .workloads.record import RECORDER

DESCRIPTION = """\
Benchmark Tapedeck against a direct connection, socat and HAProxy.

Everything runs on 127.0.0.1. Contestants alternate round by round (the
order rotates every round), and every relay is started fresh for each
workload of each round. Workloads:

  bulk   iperf3 throughput, 1 and 8 streams, both directions
  rr     redis-benchmark request/response: -c 1 latency, -c 50 requests/s
  churn  new connections per second (C client in scripts/churn.c)
  rss    relay memory while holding N idle connections
  record the tape store alone (`tapedeck-microbench store`, built from the
         Benchmarks package), once per round, and a report section comparing
         `tapedeck record` with proxy mode, HAProxy and the store ceiling,
         with the size of the tapes written
  replay `tapedeck replay --repeat` against `tapedeck proxy` in front of
         redis-server with redis-benchmark -k 0 (a new connection per
         request), and the cost of choosing a session among 100 and 10,000
         sessions (`tapedeck-microbench replay-choice`); once per round, in a
         report section of its own
  replay-scale
         replay of one 1 GiB download (time to listen, peak memory, byte-exact,
         MB/s against `tapedeck proxy` relaying it live) and of a tape of
         100,000 sessions (time to listen)
  inspect `tapedeck sessions` on a tape of 100,000 sessions
  run    the time `tapedeck run` adds to a short test command, in proxy and
         replay mode
  rules  redis-benchmark req/s through `tapedeck record` and against `tapedeck
         replay` without rules and with `--preset timestamps --preset uuid`,
         -P 1 and -P 16, and traffic the presets' expressions run on (digit
         runs, timestamps); once per round, in a report section of its own
  tls    HTTPS with wrk through `tapedeck proxy --tls intercept
         --insecure-upstream` and through HAProxy terminating and re-originating
         TLS, both in front of one nginx (and straight at it): requests/s over
         keep-alive connections, handshakes/s (a new connection per request),
         MB/s of a large body; once per round, in a report section of its own
  udp    datagrams/s through `tapedeck proxy` and `tapedeck record` with UDP
         routes, through socat (UDP4-LISTEN:...,fork) and straight at a UDP
         echo server (C client and server in scripts/udpload.c, a window of
         datagrams in flight, 1 and 8 flows); once per round, in a report
         section of its own
  dns    queries/s answered by `tapedeck replay` from a tape recorded with
         `tapedeck record --dns`, against dnsmasq answering live
         (scripts/udpload.c's DNS client); once per round, in a report
         section of its own
  mysql  queries/s answered by `tapedeck replay` from a tape of a
         mariadb-slap load recorded through `tapedeck record`, against MariaDB
         answering the same load live; once per round, in a report section of
         its own
  grpc   unary gRPC calls/s answered by `tapedeck replay` through the HTTP/2
         lens against the grpcio service answering live; once per round, in a
         report section of its own
  faults what the fault stage costs `tapedeck proxy` with no toxics, with the
         control API on (if the binary takes --api) and with a `latency`
         toxic of 0 ms (redis-benchmark req/s), and how close the `latency`
         (1, 10, 100 ms) and `bandwidth` (1 and 100 MB/s) toxics keep to
         their settings; once per round, in a report section of its own
  web    the web inspector (`tapedeck web`) in headless Chromium: time to
         the first render of the session table of 1,000 and 100,000
         sessions and of the ladder of a session of 10,000 events, and the
         API's answer time; once per round, in a report section of its own
         (needs chromium, chromedriver and Python's selenium)
  review text export and import of a tape of one 1 GiB session and of
         100,000 sessions (MB/s, peak RSS, the round trip exact), and
         `tapedeck drift` of 1,000 redis sessions beside replaying them;
         once per round, in a report section of its own (needs redis-server)

The `tapedeck-record` contestant (`tapedeck record`, tape in a temp dir that
is deleted after every run) takes part in bulk and rr by default; name it in
--contestants to run it in other workloads too. The tls workload runs legs
of its own, `direct`, `haproxy` and `tapedeck` with TLS (those of them named,
with --contestants); so does udp, `direct`, `socat`, `tapedeck` and
`tapedeck-record` with UDP routes. Contestants and workloads whose tools are not installed
are skipped with a note.

Examples:
  scripts/bench --dry-run --tapedeck .build/debug/tapedeck
  scripts/bench --quick --contestants direct,socat,haproxy
  scripts/bench --output docs/benchmarks.md
  scripts/bench --only rr,rss --rounds 5
  scripts/bench --only rr,bulk,record --contestants tapedeck,tapedeck-record,haproxy
  scripts/bench --only replay --rounds 3
  scripts/bench --only replay-scale
  scripts/bench --only rules --rounds 3
  scripts/bench --only tls --rounds 3
  scripts/bench --only udp,dns --rounds 3
  scripts/bench --only mysql --rounds 3
  scripts/bench --only grpc --rounds 3
  scripts/bench --only faults --rounds 3
  scripts/bench --only web --rounds 3
  scripts/bench --only review --rounds 3

The result is a Markdown table on stdout (median over rounds); progress and
diagnostics go to stderr.
"""


def _on_term(signum, _frame):
    raise SystemExit(128 + signum)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = ",".join(c.name for c in CONTESTANTS if c.default)
    partial = ", ".join(f"{c.name} in {'/'.join(c.default_workloads)}"
                        for c in CONTESTANTS if not c.default and c.default_workloads)
    p.add_argument("--contestants", default=None,
                   help=f"comma-separated, from: {', '.join(SPECS)} (default: {defaults}, "
                        f"plus {partial})")
    p.add_argument("--replay-n", type=int, default=None,
                   help="redis-benchmark -k 0 requests per test in the replay workload "
                        "(default 20000, 5000 with --quick)")
    p.add_argument("--replay-chunk", type=int, default=None,
                   help="replay workload: run each test as its own redis-benchmark command, "
                        "against fresh servers, of at most this many requests (default: a quarter "
                        "of the ephemeral port range, so no command runs into its own TIME_WAIT "
                        "sockets); 0 = one `-t ping,set,get -n N` command per leg")
    p.add_argument("--rules-n", type=int, default=None,
                   help="rules workload: redis-benchmark requests per test through `tapedeck record` "
                        "(default 50000, 10000 with --quick; 4x with -P 16)")
    p.add_argument("--rules-replay-n", type=int, default=None,
                   help="rules workload: redis-benchmark -k 0 requests per test against `tapedeck replay` "
                        "(default 10000, 2000 with --quick; 4x with -P 16)")
    p.add_argument("--tls-duration", type=float, default=None,
                   help="tls workload: wrk seconds per test (default 10, 3 with --quick)")
    p.add_argument("--tls-bulk-mib", type=int, default=None,
                   help="tls workload: size of the large body in MiB (default 128)")
    p.add_argument("--udp-duration", type=float, default=None,
                   help="udp and dns workloads: client seconds per test (default 5, 2 with --quick)")
    p.add_argument("--mysql-queries", type=int, default=None,
                   help="mysql workload: mariadb-slap queries per run (default 100000, 20000 with --quick)")
    p.add_argument("--grpc-duration", type=float, default=None,
                   help="seconds of gRPC calls per leg of the grpc workload (default 5)")
    p.add_argument("--faults-n", type=int, default=None,
                   help="faults workload: redis-benchmark requests per run of a cost leg (default 50000, 20000 "
                        "with --quick)")
    p.add_argument("--web-loads", type=int, default=None,
                   help="web workload: counted loads of each page per round, after one not counted (default 20, "
                        "5 with --quick)")
    p.add_argument("--only", default=",".join(w.key for w in WORKLOADS),
                   help=f"workloads to run: {','.join(w.key for w in WORKLOADS)} (default: all)")
    p.add_argument("--tapedeck", default=str(common.REPO / ".build" / "release" / "tapedeck"),
                   help="tapedeck binary (default: .build/release/tapedeck in the repo)")
    p.add_argument("--microbench", default=str(microbench.DEFAULT_PATH),
                   help="tapedeck-microbench binary, for the store ceiling and session choice "
                        "(default: Benchmarks/.build/release/tapedeck-microbench; build it with "
                        f"`{microbench.BUILD_HINT}`)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3, 1 with --quick)")
    p.add_argument("--quick", action="store_true", help="short smoke run: 1 round, short durations")
    p.add_argument("--dry-run", action="store_true",
                   help="check that the harness works, in well under a minute: every workload at tiny "
                        "sizes, 1 round; exits 1 if any measurement failed (numbers are meaningless)")
    p.add_argument("--duration", type=float, default=None, help="iperf3 seconds per run (default 5)")
    p.add_argument("--rr-n1", type=int, default=None, help="redis-benchmark -n per test for -c 1 (default 10000)")
    p.add_argument("--rr-n50", type=int, default=None, help="redis-benchmark -n per test for -c 50 (default 50000)")
    p.add_argument("--churn-seconds", type=float, default=None, help="churn run length (default 5)")
    p.add_argument("--churn-threads", type=int, default=8, help="churn client threads (default 8)")
    p.add_argument("--churn-max", type=int, default=5_000_000, help="cap on connections per churn run")
    p.add_argument("--churn-close", choices=["server", "client"], default="server",
                   help="who closes first in churn (default server; client-first pins "
                        "ephemeral ports in TIME_WAIT)")
    p.add_argument("--churn-src-spread", type=int, default=1,
                   help="spread churn client source addresses over 127.0.0.1..N (default 1)")
    p.add_argument("--rss-conns", type=int, default=1000, help="idle connections for rss (default 1000)")
    p.add_argument("--record-duration", type=float, default=3.0,
                   help="iperf3 seconds per bulk run of tapedeck-record, at most --duration "
                        "(default 3; bounds the tape to about a gigabyte)")
    p.add_argument("--record-omit", type=int, default=1,
                   help="seconds left out at the start of a tapedeck-record bulk run (iperf3 -O; "
                        "default 1)")
    p.add_argument("--tmp-dir", default=None,
                   help="where the temp dir (logs, tapes) goes (default: the system temp dir); "
                        "tapes need a few GB free")
    p.add_argument("--output", help="also write the report (with environment header) to FILE")
    p.add_argument("--json", metavar="FILE",
                   help="also write every measurement (per contestant and per round) as JSON to FILE")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir with logs")
    args = p.parse_args(argv)
    for name, normal, quick, dry in (("rounds", 3, 1, 1), ("duration", 5.0, 1.0, 1.0),
                                     ("rr_n1", 10000, 2000, 200), ("rr_n50", 50000, 10000, 1000),
                                     ("churn_seconds", 5.0, 1.0, 0.5), ("replay_n", 20000, 5000, 100),
                                     ("rules_n", 50000, 10000, 200), ("rules_replay_n", 10000, 2000, 100),
                                     ("tls_duration", 10.0, 3.0, 1.0), ("tls_bulk_mib", 128, 128, 4),
                                     ("udp_duration", 5.0, 2.0, 0.5), ("mysql_queries", 100000, 20000, 400),
                                     ("grpc_duration", 5.0, 2.0, 0.5), ("faults_n", 50000, 20000, 500),
                                     ("web_loads", 20, 5, 1)):
        if getattr(args, name) is None:
            setattr(args, name, dry if args.dry_run else quick if args.quick else normal)
    if args.dry_run:
        if args.replay_chunk is None:
            args.replay_chunk = 0
        args.rss_conns = min(args.rss_conns, 20)
        args.churn_threads = min(args.churn_threads, 2)
        args.record_duration, args.record_omit = 1.0, 0
    if args.rounds < 1 or args.rounds > 100:
        p.error("--rounds must be within 1..100")
    if not 0 < args.duration <= 300 or not 0 < args.churn_seconds <= 300:
        p.error("durations must be within (0, 300] seconds")
    if not 1 <= args.rss_conns <= 20000:
        p.error("--rss-conns must be within 1..20000")
    if not 100 <= args.replay_n <= 1_000_000:
        p.error("--replay-n must be within 100..1000000")
    if not 100 <= args.rules_n <= 10_000_000 or not 100 <= args.rules_replay_n <= 1_000_000:
        p.error("--rules-n must be within 100..10000000, --rules-replay-n within 100..1000000")
    if args.replay_chunk is not None and not (args.replay_chunk == 0 or
                                              100 <= args.replay_chunk <= 1_000_000):
        p.error("--replay-chunk must be 0 or within 100..1000000")
    if not 0 < args.tls_duration <= 300 or not 1 <= args.tls_bulk_mib <= 4096:
        p.error("--tls-duration must be within (0, 300] seconds, --tls-bulk-mib within 1..4096")
    if not 0 < args.udp_duration <= 300:
        p.error("--udp-duration must be within (0, 300] seconds")
    if not 100 <= args.mysql_queries <= 10_000_000:
        p.error("--mysql-queries must be within 100..10000000")
    if not 0 < args.grpc_duration <= 300:
        p.error("--grpc-duration must be within (0, 300] seconds")
    if not 100 <= args.faults_n <= 10_000_000:
        p.error("--faults-n must be within 100..10000000")
    if not 1 <= args.web_loads <= 1000:
        p.error("--web-loads must be within 1..1000")
    if not 1 <= args.churn_src_spread <= 250:
        p.error("--churn-src-spread must be within 1..250")
    if not 0 < args.record_duration <= 60 or not 0 <= args.record_omit <= 10:
        p.error("--record-duration must be within (0, 60], --record-omit within 0..10")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    if args.dry_run:
        common.pause_scale = 0.1

    tapedeck = str(Path(args.tapedeck).expanduser().resolve()) if os.sep in args.tapedeck \
        else (shutil.which(args.tapedeck) or args.tapedeck)
    args.microbench = str(Path(args.microbench).expanduser().resolve())
    if not os.access(tapedeck, os.X_OK):
        print(f"{tapedeck} not found or not executable (build it with `swift build -c release`, "
              f"or name one with --tapedeck)", file=sys.stderr)
        return 2
    nofile = raise_nofile()
    maxconn = max(1000, min(100000, (nofile - 200) // 2))
    log(f"RLIMIT_NOFILE={nofile}, HAProxy maxconn={maxconn}")
    busy = cpu_busy_percent(0.2 if args.dry_run else 1.0)
    load_at_start = f"{loadavg()}, CPU {busy:.0f}% busy" if busy is not None else loadavg()
    if busy is not None and busy > 20 and not args.dry_run:
        warn(f"CPUs already {busy:.0f}% busy before starting: other work on this "
             f"machine will skew the numbers")

    names = []
    implicit = set()  # run by default, but only in their default_workloads
    if args.contestants is None:
        wanted = [c.name for c in CONTESTANTS if c.default]
        implicit = {c.name for c in CONTESTANTS if not c.default and c.default_workloads}
        wanted += [c.name for c in CONTESTANTS if c.name in implicit]
    else:
        wanted = [n.strip() for n in args.contestants.split(",") if n.strip()]
    for name in wanted:
        spec = SPECS.get(name)
        if spec is None:
            print(f"unknown contestant {name!r}; known: {', '.join(SPECS)}", file=sys.stderr)
            return 2
        if spec.needs:
            exe = spec.needs.format(tapedeck=tapedeck)
            found = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
            if not found:
                skip(f"contestant {name}: {exe} not installed")
                continue
        if name not in names:
            names.append(name)
    if not names:
        print("no runnable contestant", file=sys.stderr)
        return 2
    workloads = []
    for key in [k.strip() for k in args.only.split(",") if k.strip()]:
        if key not in WORKLOAD_BY_KEY:
            print(f"unknown workload {key!r}; known: {', '.join(WORKLOAD_BY_KEY)}", file=sys.stderr)
            return 2
        workloads.append(WORKLOAD_BY_KEY[key])

    tmp = Path(tempfile.mkdtemp(prefix="tapedeck-bench-", dir=args.tmp_dir))
    ctx = Ctx(args=args, tmp=tmp, tapedeck=tapedeck, maxconn=maxconn, keep_tmp=args.keep_tmp)
    tape_fs = fs_type(tmp)
    metrics: List[Metric] = []
    for w in workloads:
        metrics.extend(w.metrics(args))
    results: Dict[str, Dict[str, List[object]]] = {m.key: {n: [] for n in names} for m in metrics}
    started = time.monotonic()
    interrupted = None
    upstream: Dict[str, Optional[int]] = {}
    skipped = set()
    log(f"contestants: {', '.join(names)}; workloads: {', '.join(w.key for w in workloads)}; "
        f"rounds: {args.rounds}; temp dir: {tmp}" + ("; DRY RUN" if args.dry_run else ""))
    try:
        for w in workloads:
            try:
                upstream[w.key] = w.setup(ctx)
            except Skip as exc:
                skip(f"workload {w.key}: {exc}")
                upstream[w.key] = None
                skipped.add(w.key)
            except Exception as exc:
                fail(f"workload {w.key} cannot run: {exc}")
                upstream[w.key] = None
        for rnd in range(args.rounds):
            ctx.round = rnd
            shift = rnd % len(names)
            order = names[shift:] + names[:shift]
            log(f"round {rnd + 1}/{args.rounds}: order {', '.join(order)}; "
                f"load average {loadavg()}")
            for w in workloads:
                if not w.per_contestant:
                    if upstream[w.key] is None:
                        continue
                    t0 = time.monotonic()
                    try:
                        w.run_round(ctx)
                    except Exception as exc:
                        fail(f"{w.key} failed: {exc}")
                    log(f"  {w.key:5s} {'(once per round)':16s} {time.monotonic() - t0:5.1f}s")
                    continue
                for name in order:
                    spec = SPECS[name]
                    out: Dict[str, object] = {}
                    keys = [m.key for m in w.metrics(args)]
                    if spec.argv is None and not w.direct_applicable:
                        out = {k: NA for k in keys}
                    elif name in implicit and w.key not in spec.default_workloads:
                        out = {k: NA for k in keys}
                    elif w.key in skipped:
                        out = {k: NA for k in keys}
                    elif upstream[w.key] is None:
                        out = {k: FAIL for k in keys}
                    else:
                        t0 = time.monotonic()
                        relay = Relay(spec, ctx, upstream[w.key], f"{name}-{w.key}-r{rnd + 1}")
                        try:
                            relay.start()
                            w.run(ctx, relay, out)
                        except Exception as exc:
                            fail(f"{name}: {w.key} failed: {exc}")
                            if relay.proc is not None:
                                tail = relay.proc.stderr_tail(5)
                                if tail:
                                    warn(f"{relay.label} stderr tail:\n{tail}")
                        finally:
                            relay.stop()
                        log(f"  {w.key:5s} {name:16s} {time.monotonic() - t0:5.1f}s  " +
                            ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                      for k, v in list(out.items())[:4]))
                    for k in keys:
                        results[k][name].append(out.get(k, FAIL))
    except (KeyboardInterrupt, SystemExit) as exc:
        interrupted = exc
        warn("interrupted; cleaning up and reporting what was measured so far")
    finally:
        Proc.stop_all()
        for w in workloads:
            try:
                w.teardown(ctx)
            except Exception as exc:
                warn(f"{w.key} teardown: {exc}")
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    elapsed = time.monotonic() - started
    log(f"done in {elapsed:.0f}s; load average at start {load_at_start}, now {loadavg()}")
    leftovers = [f"{pr.name} (pid {pr.pid})" for pr in Proc.live if pr.alive()]
    if leftovers:
        fail(f"processes still running: {', '.join(leftovers)}")

    table = results_table(metrics, names, results)
    title = f"### Results: median of {args.rounds} round(s)\n"
    if interrupted is not None:
        title = "### Results (INTERRUPTED, incomplete): median of the rounds run\n"
    report = [title, table] if metrics else []
    if args.rounds > 1 and metrics:
        report += ["\n### Per-round values\n", raw_table(metrics, names, results)]
    keys = {w.key for w in workloads}
    for w in workloads:
        if w.key in skipped and w.section_needs_setup:
            continue
        text = w.section(ctx, names, results, keys)
        if text:
            report += ["", text]
    if common.skipped:
        report += ["", "Skipped (not installed or not built):\n\n" +
                   "\n".join(f"- {note}" for note in common.skipped) + "\n"]
    body = "\n".join(report)
    print(body)
    shown = [display_arg(a) for a in (argv if argv is not None else sys.argv[1:])]
    cmd = "scripts/bench " + " ".join(shlex.quote(a) for a in shown)
    if args.output:
        extra = [line for w in workloads for line in w.environment(ctx, names)]
        if RECORDER in names or keys & {"record", "replay-scale"}:
            extra.append(f"- tapes (recorded, the store's and made for replay) in the temp dir, on {tape_fs}; "
                         f"`{RECORDER}` bulk runs: iperf3 -t {min(args.duration, args.record_duration):g} "
                         f"-O {args.record_omit}")
        doc = ["# Tapedeck benchmarks\n",
               HOW_TO_RUN_MD,
               "## Results\n",
               f"Generated by `{cmd.strip()}` in {elapsed / 60:.1f} minutes.\n",
               environment_md(args, names, tapedeck, maxconn, load_at_start, extra),
               body,
               METHOD_MD + "".join(w.method_md for w in workloads)]
        Path(args.output).write_text("\n".join(doc))
        log(f"wrote {args.output}")
    if args.json:
        data = {"command": cmd.strip(), "rounds": args.rounds, "minutes": round(elapsed / 60, 2),
                "interrupted": interrupted is not None, "contestants": names,
                "workloads": [w.key for w in workloads],
                "results": results,
                "record": {k: {str(r): v[r] for r in sorted(v)} for k, v in sorted(ctx.record.items())},
                "skipped": common.skipped, "failures": common.failures}
        Path(args.json).write_text(json.dumps(data, indent=1, default=str) + "\n")
        log(f"wrote {args.json}")
    if interrupted is not None:
        return 130 if isinstance(interrupted, KeyboardInterrupt) else (interrupted.code or 1)
    if args.dry_run:
        ran = [w.key for w in workloads if w.key not in skipped]
        log(f"dry run: {len(ran)} of {len(workloads)} workloads ran ({', '.join(ran) or 'none'}); "
            f"{len(common.skipped)} skipped; {len(common.failures)} failed")
        for problem in common.failures:
            log(f"  failed: {problem}")
        return 1 if common.failures else 0
    return 0
