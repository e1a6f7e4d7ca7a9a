"""record: the tape store alone, and the report section that compares
`tapedeck record` with proxy mode, HAProxy and the store ceiling."""

import statistics
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from .. import microbench
from ..common import FAIL, BenchError, fail, log, pause
from ..report import median_cell, rec_median
from ..tapes import check_disk
from ..workload import Ctx, Workload
from .bulk import Bulk
from .rr import ReqResp


class Record(Workload):
    """The tape store alone, with `tapedeck-microbench store` (the Benchmarks
    package), once per round: the bulk ceiling (64 KiB events, default and
    4 KiB pages), the small-event insert rate, and the store shaped like the
    bulk recordings. The record section of the report is built from these,
    the tapes measured by bulk and rr, and the bulk and rr results."""
    key = "record"
    title = "recording"
    per_contestant = False
    # The section compares the recordings made in bulk and rr even without the store.
    section_needs_setup = False
    # (key, events, payload bytes, --page-size or None for the default,
    #  --sessions or None for the default of 64, interleaved round-robin)
    # The store_match runs are shaped like the bulk recordings: events the size
    # of the recorder's reads there (about 250 KB), in as many sessions as
    # iperf3 has data streams; interleaving many sessions is much slower, as
    # the clustered events table then takes its inserts all over the tree.
    STORE = [("store_big", 20_000, 65_536, None, None),
             ("store_big_4k", 20_000, 65_536, 4096, None),
             ("store_small", 2_000_000, 64, None, None),
             ("store_match1", 5_000, 262_144, None, 1),
             ("store_match8", 5_000, 262_144, None, 8)]
    # A dry run writes a hundredth of the events.
    DRY_RUN_DIVISOR = 100

    def metrics(self, args):
        return []

    def setup(self, ctx):
        microbench.require(ctx.args.microbench)
        return 0

    def store(self, ctx, events: int, size: int, page: Optional[int],
              sessions: Optional[int]) -> Dict[str, float]:
        check_disk(ctx, events * size * 1.3 + 1e9, "store")
        d = Path(tempfile.mkdtemp(prefix="store-", dir=ctx.tmp))
        try:
            tape = d / "store.tape"
            res = microbench.store(ctx.args.microbench, tape, events, size, page, sessions)
            if res["events"] != events or res["payloadBytes"] != events * size:
                raise BenchError(f"the store wrote {res['events']} events / "
                                 f"{res['payloadBytes']} bytes, asked for {events} x {size}")
            if res["tapeBytes"] < res["payloadBytes"]:
                raise BenchError(f"the store's tape ({res['tapeBytes']} bytes) is smaller than "
                                 f"its payload ({res['payloadBytes']})")
            con = sqlite3.connect(f"file:{tape}?mode=ro", uri=True, timeout=10)
            try:
                res["page_size"] = con.execute("PRAGMA page_size").fetchone()[0]
            finally:
                con.close()
            return res
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def run_round(self, ctx):
        shift = ctx.round % len(self.STORE)
        divisor = self.DRY_RUN_DIVISOR if ctx.dry_run else 1
        for name, events, size, page, sessions in self.STORE[shift:] + self.STORE[:shift]:
            t0 = time.monotonic()
            try:
                res = self.store(ctx, max(1, events // divisor), size, page, sessions)
            except Exception as exc:
                fail(f"store {name}: {exc}")
                for k in ("mbps", "eps", "ratio"):
                    ctx.rec(f"{name}_{k}", FAIL)
                continue
            ctx.rec(f"{name}_mbps", res["megabytes_per_second"])
            ctx.rec(f"{name}_eps", res["events_per_second"])
            ctx.rec(f"{name}_ratio", res["tapeBytes"] / res["payloadBytes"])
            ctx.rec(f"{name}_page", res["page_size"])
            log(f"  store {name:16s} {time.monotonic() - t0:5.1f}s  "
                f"{res['megabytes_per_second']:.1f} MB/s, {res['events_per_second']:,.0f} events/s, "
                f"tape {res['tapeBytes'] / res['payloadBytes']:.3f}x payload, "
                f"{res['page_size']} B pages")
            pause(0.3)
        big, small = ctx.record.get("store_big_mbps", {}), ctx.record.get("store_big_4k_mbps", {})
        a, b = big.get(ctx.round), small.get(ctx.round)
        ctx.rec("store_gain", a / b if isinstance(a, float) and isinstance(b, float) and b else FAIL)

    @property
    def method_md(self):
        return RECORD_METHOD_MD

    def section(self, ctx, names, results, keys):
        return record_section(ctx, names, results, keys)


RR_TARGET = 0.90            # rr -c 50 req/s while recording, x proxy mode
CEILING_TARGET = 0.80       # bulk while recording, x the store ceiling
TAPE_RATIO_TARGET = 1.10    # tape size, x the payload ...
EVENT_OVERHEAD_TARGET = 64  # ... plus this many bytes per event ("a small constant")
SMALL_EVENTS_TARGET = 1_000_000  # events/s, 64-byte events
MBPS_PER_GBITPS = 1e9 / 8 / 1e6  # Gbit/s -> MB/s (10^6 bytes/s)
RECORDER = "tapedeck-record"


def record_section(ctx: Ctx, names: List[str], results, keys: set) -> str:
    args = ctx.args
    footnote = False

    def res_med(key, name):
        return median_cell(results.get(key, {}).get(name, []))

    def cell(v, flag, spec):
        nonlocal footnote
        if v is None:
            return flag or "-"
        footnote = footnote or flag == "*"
        return format(v, spec) + flag

    def ratio(a, b):
        return f"{a / b:.2f}" if a is not None and b else "-"

    def case_label(streams, reverse):
        d = "server->client" if reverse else "client->server"
        return f"bulk {streams} stream{'s' if streams > 1 else ''} {d}"

    store = any(isinstance(v, (int, float)) for v in ctx.record.get("store_big_mbps", {}).values())
    ceiling = rec_median(ctx, "store_big_mbps")[0]
    matched = {1: rec_median(ctx, "store_match1_mbps")[0], 8: rec_median(ctx, "store_match8_mbps")[0]}
    page = rec_median(ctx, "store_big_page")[0]
    page_label = f"{int(page) // 1024} KiB pages (default)" if page else "default pages"
    out = ["### Recording (`tapedeck record`)\n"]

    # --- against proxy mode, HAProxy and the store ceiling
    others = [n for n in ("tapedeck", "haproxy") if n in names]
    shown = [RECORDER] + others
    if RECORDER in names and keys & {"rr", "bulk"}:
        head = (["metric"] + shown +
                [f"record/{'proxy' if n == 'tapedeck' else n}" for n in others] +
                ["record/ceiling", "record/matched store"])
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        if "rr" in keys:
            for t in ReqResp.TESTS:
                vals = {n: res_med(f"rr_c50_{t}_rps", n) for n in shown}
                row = [f"rr -c 50 {t} (req/s)"] + [cell(*vals[n], ",.0f") for n in shown]
                row += [ratio(vals[RECORDER][0], vals[n][0]) for n in others] + ["-", "-"]
                lines.append("| " + " | ".join(row) + " |")
        if "bulk" in keys:
            for streams, reverse in Bulk.cases(args):
                vals = {}
                for n in shown:
                    v, flag = res_med(Bulk.mkey(streams, reverse), n)
                    vals[n] = (v * MBPS_PER_GBITPS if v is not None else None, flag)
                row = [f"{case_label(streams, reverse)} (MB/s)"]
                row += [cell(*vals[n], ",.0f") for n in shown]
                row += [ratio(vals[RECORDER][0], vals[n][0]) for n in others]
                row.append(ratio(vals[RECORDER][0], ceiling))
                row.append(ratio(vals[RECORDER][0], matched.get(streams)))
                lines.append("| " + " | ".join(row) + " |")
        out.append("\n".join(lines) + "\n")
        note = ("Bulk in MB/s = 10^6 payload bytes per second (iperf3 Gbit/s x 125), the unit of "
                "the store ceiling.")
        if "bulk" in keys:
            note += (f" `{RECORDER}` bulk runs last {min(args.duration, args.record_duration):g} s "
                     f"after {args.record_omit} s left out (`iperf3 -O`); the other contestants "
                     f"run {args.duration:g} s.")
        if store:
            note += (f" Ceiling: `tapedeck-microbench store` with 64 KiB events and {page_label}, "
                     f"median of this run's rounds. Matched store: the same shaped like the "
                     f"recording, 256 KiB events (about the recorder's mean read in bulk) in 1 "
                     f"or 8 sessions (as many as iperf3 has data streams) instead of 64.")
        else:
            note += (" No ceiling: the store was not measured (the `record` workload needs "
                     "`tapedeck-microbench`, see docs/benchmarks.md).")
        out.append(note + "\n")
    elif RECORDER not in names:
        out.append(f"`{RECORDER}` was not among the contestants: no recording numbers.\n")

    # --- the store alone
    if store:
        divisor = Record.DRY_RUN_DIVISOR if ctx.dry_run else 1
        n = {name: f"{max(1, events // divisor):,}" for name, events, *_ in Record.STORE}
        store_rows = [
            ("store_big_mbps", f"store ceiling: {n['store_big']} x 64 KiB events, {page_label} (MB/s)",
             ",.1f"),
            ("store_big_4k_mbps", f"store: {n['store_big_4k']} x 64 KiB events, 4 KiB pages (MB/s)", ",.1f"),
            ("store_gain", "ceiling gain of the default pages over 4 KiB pages (x)", ".2f"),
            ("store_big_ratio", f"tape / payload, 64 KiB events, {page_label}", ".3f"),
            ("store_big_4k_ratio", "tape / payload, 64 KiB events, 4 KiB pages", ".3f"),
            ("store_small_eps", f"small events: {n['store_small']} x 64 B (events/s)", ",.0f"),
            ("store_small_ratio", "tape / payload, 64 B events", ".2f"),
            ("store_match1_mbps", f"matched store: {n['store_match1']} x 256 KiB events, 1 session (MB/s)",
             ",.1f"),
            ("store_match8_mbps", f"matched store: {n['store_match8']} x 256 KiB events, 8 sessions (MB/s)",
             ",.1f"),
        ]
        lines = ["| store (`tapedeck-microbench store`) | median | per round |", "|---|---:|---:|"]
        for k, label, spec in store_rows:
            v, flag = rec_median(ctx, k)
            per = " / ".join(format(x, spec) if isinstance(x, (int, float)) else str(x)
                             for _, x in sorted(ctx.record.get(k, {}).items()))
            lines.append(f"| {label} | {cell(v, flag, spec)} | {per or '-'} |")
        v = rec_median(ctx, "store_small_eps")[0]
        lines.append(f"| small-event rate / {SMALL_EVENTS_TARGET:,} events/s target (x) | "
                     f"{ratio(v, SMALL_EVENTS_TARGET)} | |")
        out.append("\n".join(lines) + "\n")

    # --- the tapes written while recording
    cases = []
    if RECORDER in names and "bulk" in keys:
        cases += [(Bulk.mkey(s, r), case_label(s, r)) for s, r in Bulk.cases(args)]
    if RECORDER in names and "rr" in keys:
        cases.append(("rr", "rr (-c 1 and -c 50, one tape)"))
    if cases:
        head = ["tape of", "payload (MB)", "tape (MB)", "tape/payload", "events",
                "overhead (B/event)", "mean data event (B)", "recorder RSS idle / peak (MiB)",
                "event loops CPU (%)", "busiest other thread CPU (%)"]
        lines = ["| " + " | ".join(head) + " |",
                 "|---|" + "|".join(["---:"] * (len(head) - 1)) + "|"]
        for case, label in cases:
            def g(k):
                return rec_median(ctx, f"tape_{case}_{k}")

            def r(k):
                return rec_median(ctx, f"rec_{case}_{k}")
            size, payload = g("size"), g("payload")
            row = [label,
                   cell(payload[0] / 1e6 if payload[0] is not None else None, payload[1], ",.1f"),
                   cell(size[0] / 1e6 if size[0] is not None else None, size[1], ",.1f"),
                   cell(*g("ratio"), ".3f"), cell(*g("events"), ",.0f"),
                   cell(*g("overhead"), ",.1f"), cell(*g("mean_event"), ",.0f")]
            idle, peak = r("idle_rss"), r("peak_rss")
            row.append(f"{cell(*idle, '.0f')} / {cell(*peak, '.0f')}" if peak[0] is not None else "-")
            row += [cell(*r("loops_cpu"), ".0f"), cell(*r("writer_cpu"), ".0f")]
            lines.append("| " + " | ".join(row) + " |")
        out.append("\n".join(lines) + "\n")
        out.append("Tape size: the file after the recorder exited 0 on SIGTERM. Payload: "
                   "`SUM(client_bytes + upstream_bytes)` of its sessions. Overhead per event: "
                   "(size - payload) / `COUNT(*)` of its events. CPU: % of one core over the "
                   "iperf3 run (bulk only); the tape writer is the busiest thread that is not "
                   "an event loop. The recorder holds at most 64 MiB of unwritten payload and "
                   "then stops reading until the writer catches up (backpressure).\n")

    # --- targets
    targets = []

    def verdict(ok):
        return "-" if ok is None else ("yes" if ok else "no")

    if RECORDER in names and "rr" in keys and "tapedeck" in names:
        rs = []
        for t in ReqResp.TESTS:
            a = res_med(f"rr_c50_{t}_rps", RECORDER)[0]
            b = res_med(f"rr_c50_{t}_rps", "tapedeck")[0]
            if a is not None and b:
                rs.append(a / b)
        label = "rr -c 50 req/s while recording / proxy mode (geometric mean of the tests)"
        if rs:
            gm = statistics.geometric_mean(rs)
            targets.append((label, f">= {RR_TARGET:.2f}",
                            f"{gm:.2f} (tests {min(rs):.2f} to {max(rs):.2f})",
                            verdict(gm >= RR_TARGET)))
        else:
            targets.append((label, f">= {RR_TARGET:.2f}", "not measured", "-"))
    if RECORDER in names and "bulk" in keys:
        for streams, reverse in Bulk.cases(args):
            v = res_med(Bulk.mkey(streams, reverse), RECORDER)[0]
            label = (f"{case_label(streams, reverse)} while recording / store ceiling"
                     + (" (optional)" if streams > 1 else ""))
            if v is not None and ceiling:
                x = v * MBPS_PER_GBITPS / ceiling
                targets.append((label, f">= {CEILING_TARGET:.2f}", f"{x:.2f}",
                                verdict(x >= CEILING_TARGET)))
            else:
                targets.append((label, f">= {CEILING_TARGET:.2f}", "not measured", "-"))

    tape_target = f"<= {TAPE_RATIO_TARGET:.2f} x payload + {EVENT_OVERHEAD_TARGET} B/event"

    def tape_ok(case):
        size = rec_median(ctx, f"tape_{case}_size")[0]
        payload = rec_median(ctx, f"tape_{case}_payload")[0]
        events = rec_median(ctx, f"tape_{case}_events")[0]
        if size is None or payload is None or events is None:
            return None
        return size <= TAPE_RATIO_TARGET * payload + EVENT_OVERHEAD_TARGET * events

    bulk_tapes = [c for c, _ in cases if c != "rr"]
    if bulk_tapes:
        oks = [tape_ok(c) for c in bulk_tapes]
        ratios = [rec_median(ctx, f"tape_{c}_ratio")[0] for c in bulk_tapes]
        ratios = [x for x in ratios if x is not None]
        measured = (f"{max(ratios):.3f} x payload (worst of {len(ratios)})" if ratios
                    else "not measured")
        targets.append(("tape size, bulk tapes", tape_target, measured,
                        verdict(None if None in oks else all(oks))))
    if any(c == "rr" for c, _ in cases):
        ov, ra = rec_median(ctx, "tape_rr_overhead")[0], rec_median(ctx, "tape_rr_ratio")[0]
        measured = (f"{ov:.1f} B/event over payload ({ra:.2f} x payload)" if ov is not None
                    else "not measured")
        targets.append(("tape size, rr tape (small events)", tape_target, measured,
                        verdict(tape_ok("rr"))))
    if store:
        v = rec_median(ctx, "store_small_eps")[0]
        targets.append(("small-event insert rate, 64 B events (events/s)",
                        f">= {SMALL_EVENTS_TARGET:,}",
                        f"{v:,.0f} ({v / SMALL_EVENTS_TARGET:.2f} x target)" if v else "not measured",
                        verdict(None if v is None else v >= SMALL_EVENTS_TARGET)))
    if targets:
        lines = ["| target | wanted | measured | met |", "|---|---|---|:---:|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]
        out += ["#### Targets\n", "\n".join(lines) + "\n",
                f"Medians over {args.rounds} round(s). The per-event allowance "
                f"({EVENT_OVERHEAD_TARGET} B) is this benchmark's reading of \"a small constant "
                f"per event\".\n"]
    if footnote:
        out.append("`*` median of the rounds that succeeded; at least one round failed.\n")
    return "\n".join(out)


RECORD_METHOD_MD = """\
- record: `tapedeck record` runs as the contestant `tapedeck-record` in bulk and rr, with
  its tape in a fresh temp dir that is deleted after every run. In bulk the recorder is
  restarted for each of the four cases, so that each tape holds one iperf3 run, and the
  run is shorter (`--record-duration`, 3 s) with its first second left out
  (`iperf3 -O 1`): that keeps the tape near a gigabyte and leaves out the start, while
  the recorder's 64 MiB memory budget fills up before backpressure applies. After each
  run the recorder is stopped with SIGTERM; if it exited with 0, the tape is opened
  read-only with Python's `sqlite3` and measured: file size /
  `SUM(client_bytes + upstream_bytes)` of its sessions, and
  (size - payload) / `COUNT(*)` of its events. The store ceiling is
  `tapedeck-microbench store --events 20000 --size 65536` (from the Benchmarks package:
  the recorder's tape writer fed from one thread, no network), run once in every round
  of the same invocation, also with `--page-size 4096` (SQLite's default); the
  small-event rate is `--events 2000000 --size 64`. `--events 5000 --size 262144
  --sessions 1` and `--sessions 8` ("matched store") are shaped like the bulk recordings
  (the recorder's reads average about 250 KB there, and there are 1 or 8 data sessions
  rather than the default 64 interleaved ones, which is much slower). The runs alternate
  in order from round to round.
  Recorded tapes and the store's scratch tapes are in the same temp dir, so on the
  same filesystem. Bulk throughput while recording is converted to MB/s (10^6 payload
  bytes per second) to compare it with the ceiling.
"""
