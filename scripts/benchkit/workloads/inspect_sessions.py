"""inspect: how fast `tapedeck sessions` starts on a tape of 100,000 sessions."""

import time
from pathlib import Path

from ..common import FAIL, BenchError, fail, log
from ..process import run_cmd
from ..report import rec_median
from ..tapes import add_sessions, record_seed_tape
from ..workload import Ctx, Workload


class Inspect(Workload):
    """How fast `tapedeck sessions` starts on a tape of 100,000 sessions: the
    time to print the first page (--limit 50) and to list everything as JSON.
    The tape is made once: `tapedeck record` writes one session, then SQLite
    adds the rest (see tapes.py)."""
    key = "inspect"
    title = "inspect"
    per_contestant = False
    SESSIONS = 100_000
    DRY_RUN_SESSIONS = 1_000

    def metrics(self, args):
        return []

    def setup(self, ctx):
        return 0

    def sessions(self, ctx) -> int:
        return self.DRY_RUN_SESSIONS if ctx.dry_run else self.SESSIONS

    def tape(self, ctx) -> Path:
        path = ctx.tmp / "inspect.tape"
        if not path.exists():
            record_seed_tape(ctx.tapedeck, path, ctx.tmp)
            add_sessions(path, self.sessions(ctx) - 1)
        return path

    def timed(self, argv) -> float:
        t0 = time.monotonic()
        cp = run_cmd(argv, timeout=120, name="tapedeck sessions")
        elapsed = time.monotonic() - t0
        if cp.returncode != 0:
            raise BenchError(f"{' '.join(argv[1:3])} rc={cp.returncode}")
        return elapsed

    def run_round(self, ctx):
        try:
            tape = self.tape(ctx)
            ctx.rec("inspect_first_page", self.timed([ctx.tapedeck, "sessions", str(tape), "--limit", "50"]))
            ctx.rec("inspect_all_json", self.timed([ctx.tapedeck, "sessions", str(tape), "--json"]))
            log(f"  inspect first page {ctx.record['inspect_first_page'][ctx.round] * 1000:.0f} ms, "
                f"all {self.sessions(ctx):,} as JSON {ctx.record['inspect_all_json'][ctx.round]:.2f} s")
        except Exception as exc:
            fail(f"inspect: {exc}")
            ctx.rec("inspect_first_page", FAIL)
            ctx.rec("inspect_all_json", FAIL)

    def section(self, ctx, names, results, keys):
        return inspect_section(ctx)


def inspect_section(ctx: Ctx) -> str:
    sessions = Inspect().sessions(ctx)
    first = rec_median(ctx, "inspect_first_page")[0]
    every = rec_median(ctx, "inspect_all_json")[0]
    return "\n".join([
        "### Inspect (`tapedeck sessions`)\n",
        f"A tape of {sessions:,} sessions; wall time of the whole command, process start included.\n",
        "| measurement | median |", "|---|---:|",
        f"| first page (`--limit 50`) | {first * 1000:.0f} ms |" if first else "| first page | fail |",
        f"| all sessions as JSON (`--json`) | {every:.2f} s |" if every else "| all sessions as JSON | fail |",
        "", "| target | wanted | measured | met |", "|---|---|---|:---:|",
        f"| first page of {sessions:,} sessions | < 1 s | {first * 1000:.0f} ms | {'yes' if first < 1 else 'no'} |"
        if first else f"| first page of {sessions:,} sessions | < 1 s | - | no |",
    ]) + "\n"
