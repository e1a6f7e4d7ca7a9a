"""The Markdown report: the results table, per-round values, the environment
header and the method notes."""

import datetime
import os
import platform
import re
import statistics
from pathlib import Path
from typing import List

from .common import FAIL, NA, REPO
from .sysinfo import cpu_model, tool_version
from .workload import Ctx, Metric


def median_cell(values: List[object]):
    nums = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return None, ""
    if all(v == NA for v in values):
        return None, NA
    if not nums:
        return None, FAIL
    return statistics.median(nums), ("*" if len(nums) < len(values) else "")


def fmt_num(v: float, spec: str) -> str:
    return format(v, spec)


def results_table(metrics: List[Metric], names: List[str], results) -> str:
    has = set(names)
    ratios = []
    ours = [n for n in names if n.startswith("tapedeck")]
    if "tapedeck" in has:
        ratios += [(n, "tapedeck") for n in ours if n != "tapedeck"]
    if "direct" in has:
        ratios += [(n, "direct") for n in ours]
    if "haproxy" in has:
        ratios += [(n, "haproxy") for n in ours]
        ratios += [(n, "haproxy") for n in names if n != "haproxy" and n not in ours]
    head = ["metric", "better"] + names + [f"{a}/{b}" for a, b in ratios]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---", ":---:"] + ["---:"] * (len(head) - 2)) + "|"]
    footnote = False
    for m in metrics:
        med = {}
        row = [m.label, m.better]
        for n in names:
            v, flag = median_cell(results.get(m.key, {}).get(n, []))
            med[n] = v
            if v is None:
                row.append(flag or "-")
            else:
                row.append(fmt_num(v, m.fmt) + flag)
                footnote = footnote or bool(flag)
        for a, b in ratios:
            va, vb = med.get(a), med.get(b)
            row.append(f"{va / vb:.2f}" if va is not None and vb else "-")
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    if footnote:
        text += "\n`*` median of the rounds that succeeded; at least one round failed.\n"
    return text


def raw_table(metrics: List[Metric], names: List[str], results) -> str:
    lines = ["| metric | " + " | ".join(names) + " |",
             "|---|" + "|".join(["---:"] * len(names)) + "|"]
    for m in metrics:
        row = [m.label]
        for n in names:
            vals = results.get(m.key, {}).get(n, [])
            row.append(" / ".join(fmt_num(v, m.fmt) if isinstance(v, (int, float)) else str(v)
                                  for v in vals) or "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def rec_median(ctx: Ctx, key: str):
    """(median, flag) of a record-section value over the rounds."""
    vals = list(ctx.record.get(key, {}).values())
    nums = [v for v in vals if isinstance(v, (int, float))]
    if not nums:
        return None, (FAIL if vals else "")
    return statistics.median(nums), ("*" if len(nums) < len(vals) else "")


def environment_md(args, names: List[str], tapedeck: str, maxconn: int, load_at_start: str,
                   extra: List[str]) -> str:
    """The report's header: date, machine, settings and tool versions;
    `extra` lines (from the workloads) go before the versions."""
    def first_matching(pattern):
        return lambda s: next((l for l in s.splitlines() if re.search(pattern, l)), s.splitlines()[0])

    versions = [
        ("socat", tool_version(["socat", "-V"], first_matching(r"socat version"))),
        ("haproxy", tool_version(["haproxy", "-v"], lambda s: s.splitlines()[0].split(" - ")[0])),
        ("iperf3", tool_version(["iperf3", "--version"])),
        ("redis-server", tool_version(["redis-server", "--version"],
                                     lambda s: " ".join(s.split()[:3]))),
        ("redis-benchmark", tool_version(["redis-benchmark", "--version"])),
        ("gcc", tool_version(["gcc", "--version"])),
        ("python", platform.python_version()),
    ]
    # Every workload but bulk, rr, churn and rss drives tapedeck itself, whatever the contestants.
    v = tool_version([tapedeck, "--version"])
    commit = tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    versions.insert(0, ("tapedeck", f"{v} (git {commit})"))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"- date: {now}",
        f"- kernel: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores; load average at start "
        f"{load_at_start}",
        "- all traffic on 127.0.0.1; load generators, upstream servers and the relay "
        "share the same cores",
        f"- rounds: {args.rounds}; iperf3 {args.duration:g} s per run; redis-benchmark "
        f"-n {args.rr_n1} (-c 1) / -n {args.rr_n50} (-c 50) per test; churn "
        f"{args.churn_seconds:g} s with {args.churn_threads} threads; "
        f"{args.rss_conns} idle connections; HAProxy maxconn {maxconn}",
        *extra,
        "- versions: " + "; ".join(f"{k} `{v}`" for k, v in versions),
    ]
    return "\n".join(lines) + "\n"


HOW_TO_RUN_MD = """\
## How to run

Two kinds of benchmark, both kept out of the product:

- **Micro-benchmarks** (`Benchmarks/`, a package of its own that depends on this one and on
  [package-benchmark](https://github.com/ordo-one/package-benchmark)): the parts that need no network,
  measured in-process with wall clock, throughput and malloc counts. `StoreInsert` writes data events
  through the recorder's store path (`SessionRecorder` -> `TapeWriter`) into a scratch tape: 64 KiB events in
  64 sessions, 256 KiB events in one session, 64-byte events in 64 sessions. `ReplayChoice` plays connections
  against a catalog of 100 and of 10,000 recorded sessions through replay's session choice
  (`SessionCatalog`, `ReplayMatcher`), without sockets. They reach the library's internals through
  `@_spi(Benchmarks)`.

  ```sh
  swift package --package-path Benchmarks benchmark                      # all, with a table per suite
  swift package --package-path Benchmarks benchmark --target StoreInsert # one suite
  swift package --package-path Benchmarks benchmark baseline update main # keep a baseline ...
  swift package --package-path Benchmarks benchmark baseline check main  # ... and compare with it
  ```

  The thresholds in the suites (25% on time and throughput, 5% on malloc counts at the median) apply to
  `baseline check`. The same workloads, as one-shot commands printing JSON, are `tapedeck-microbench store`
  and `tapedeck-microbench replay-choice`, which `scripts/bench` uses:
  `swift build -c release --package-path Benchmarks --product tapedeck-microbench`.
- **The system harness** (`scripts/bench`, code in `scripts/benchkit/`): the release `tapedeck` against real
  peers on loopback (a direct connection, socat, HAProxy, iperf3, redis-server, nginx and wrk for TLS, dnsmasq
  for DNS), with the results below. Build first with `swift build -c release` (and `tapedeck-microbench` as above, for the
  store ceiling and session choice; without it those rows are skipped). `scripts/bench --help` lists the
  workloads and options. The peers, on Debian or Ubuntu: `apt-get install python3 gcc iperf3 redis-server
  redis-tools socat haproxy nginx wrk openssl dnsmasq`; a contestant or workload whose tools are missing is
  skipped with a note (the tls workload needs nginx, openssl and wrk, and runs without HAProxy if it is missing;
  the udp workload runs without socat, and the dns workload needs dnsmasq).

  ```sh
  scripts/bench --output docs/benchmarks.md      # everything, 3 rounds (about 20 minutes)
  scripts/bench --only replay-scale --rounds 3   # replay of a 1 GiB session and of 100,000 sessions
  scripts/bench --only rules --rounds 3          # what rules cost record and replay (about 5 minutes)
  scripts/bench --only tls --rounds 3            # HTTPS through tapedeck and HAProxy (about 5 minutes)
  scripts/bench --only udp,dns --rounds 3        # UDP datagrams/s against socat, DNS replay against dnsmasq
  scripts/bench --only rr,rss --rounds 5         # some workloads
  scripts/bench --dry-run --tapedeck .build/debug/tapedeck   # does the harness work? (under a minute)
  ```

  The dry run runs every workload at tiny sizes and skips the peers that are not installed, with a note; the
  test suite runs it (`BenchHarnessTests`). Its numbers mean nothing.
"""


METHOD_MD = """\
## How it was measured

- Contestants: `direct` (no relay), `socat` (`TCP-LISTEN:...,fork,reuseaddr,backlog=1024`,
  one process per connection), `haproxy` (`mode tcp`, default threading, run with `-db`)
  and `tapedeck proxy`. Each round runs every workload once per contestant; the
  contestant order rotates from round to round, and each relay is started fresh for
  each workload of each round. Cells are medians over the rounds.
- bulk: `iperf3 -c ... -t T [-P 8] [-R] -J` through the relay to a one-off
  `iperf3 -s`; the value is `end.sum_received.bits_per_second`. `client->server` is
  the default direction, `server->client` is `-R`.
- rr: `redis-benchmark -t ping,set,get --csv` through the relay to a local
  `redis-server` (no persistence); `-c 1` gives latency (redis-benchmark's histogram
  has a resolution of roughly 8-16 us at these values, so the mean is the finer
  signal), `-c 50` gives requests/s.
- churn: `scripts/churn.c`, several blocking client threads, each looping
  connect / send `PING` / read `+PONG` / read EOF / close for a fixed time, against
  a small epoll server that answers and then closes first (so the TIME_WAIT state
  stays on the accepting sides and client ephemeral ports are not pinned).
  The latency row is the p99 of one whole connection's lifetime.
- rss: the relay's memory summed over its process tree (for socat, the listener plus
  every forked child) from `/proc/PID/status` (VmRSS, VmHWM) and
  `/proc/PID/smaps_rollup` (Pss), before and after opening N connections through it
  to a server that keeps them open; every connection gets one `PING`/`+PONG` so the
  upstream leg is known to exist. Per-connection cost = (after - before) / N.
  Summed RSS counts shared pages once per process, which inflates socat; PSS
  splits shared pages between processes.
- Ratios divide medians; read them with the `better` column (for latency and
  memory lower is better, for throughput higher is better).
"""


def display_arg(arg: str) -> str:
    """Command-line argument as shown in the report: paths inside the repo
    become repo-relative, other absolute paths are cut to their last part."""
    opt, eq, val = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if os.path.isabs(val):
        path = Path(val).resolve()
        try:
            val = str(path.relative_to(REPO))
        except ValueError:
            val = ".../" + path.name
    return f"{opt}{eq}{val}"
