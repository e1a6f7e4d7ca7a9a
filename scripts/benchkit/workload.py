"""What every workload shares: the metrics it reports, the run's context, and
the Workload base class."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .common import FAIL, BenchError, fail, log, warn
from .contestants import Relay
from .process import Proc
from .tapes import measure_tape


@dataclass
class Metric:
    key: str
    label: str
    better: str  # "higher" | "lower"
    fmt: str     # format spec for the value


@dataclass
class Ctx:
    args: argparse.Namespace
    tmp: Path
    tapedeck: str
    maxconn: int
    keep_tmp: bool
    churn_bin: Optional[str] = None
    udpload_bin: Optional[str] = None
    shared: Dict[str, Proc] = field(default_factory=dict)
    ports: Dict[str, int] = field(default_factory=dict)
    round: int = 0
    # Record-section measurements: key -> {round: value}.
    record: Dict[str, Dict[int, object]] = field(default_factory=dict)

    def rec(self, key: str, value: object) -> None:
        self.record.setdefault(key, {})[self.round] = value

    @property
    def dry_run(self) -> bool:
        return bool(getattr(self.args, "dry_run", False))


class Workload:
    """One kind of measurement. A per-contestant workload runs once for every
    relay in every round (setup, then run); the others run once per round
    (setup, then run_round) and usually write a report section of their own."""
    key = ""
    title = ""
    direct_applicable = True
    # False: run once per round (run_round) instead of once per contestant.
    per_contestant = True
    # Method notes appended to the report written with --output.
    method_md = ""
    # Whether the report section is left out when the workload was skipped.
    section_needs_setup = True

    def section(self, ctx: Ctx, names: List[str], results, keys: set) -> Optional[str]:
        """This workload's own part of the report (Markdown), if it has one."""
        return None

    def environment(self, ctx: Ctx, names: List[str]) -> List[str]:
        """Lines for the environment header of the report."""
        return []

    def run_round(self, ctx: Ctx) -> None:
        raise NotImplementedError

    def teardown(self, ctx: Ctx) -> None:
        """Called once after the last round (also when interrupted): delete
        anything kept across rounds, such as tapes."""

    def finish_tape(self, ctx: Ctx, relay: Relay, case: str, sent: Optional[int] = None) -> None:
        """Stop a recording relay, measure its tape (key prefix tape_CASE_)
        and delete it. `sent`: bytes the clients know were relayed at least."""
        def inspect(tape: Path) -> None:
            m = measure_tape(tape)
            for k in ("size", "payload", "events", "ratio", "overhead", "mean_event"):
                ctx.rec(f"tape_{case}_{k}", m[k])
            ctx.rec("tape_page_size", m["page_size"])
            if sent is not None and m["payload"] < sent:
                warn(f"tape of {case}: sessions account for {m['payload']} bytes, but at "
                     f"least {sent} were relayed")
            log(f"    tape {case}: {m['size'] / 1e6:.1f} MB for {m['payload'] / 1e6:.1f} MB "
                f"payload ({m['ratio']:.3f}x), {m['events']} events in {m['sessions']} "
                f"sessions, {m['overhead']:.1f} B/event over payload")
        try:
            relay.stop(inspect=inspect)
        except Exception as exc:
            fail(f"{relay.label}: tape of {case} not measured: {exc}")

    def metrics(self, args) -> List[Metric]:
        raise NotImplementedError

    def setup(self, ctx: Ctx) -> int:
        """Start shared upstream(s); return the port relays forward to."""
        raise NotImplementedError

    def run(self, ctx: Ctx, relay: Relay, out: Dict[str, object]) -> None:
        raise NotImplementedError

    def step(self, relay: Relay, out: Dict[str, object], keys: List[str],
             fn: Callable[[], Dict[str, float]]) -> None:
        """Run one measurement; on error mark its metrics as failed."""
        try:
            res = fn()
            for k in keys:
                out[k] = res[k]
        except Exception as exc:
            fail(f"{relay.spec.name}: {self.key} {'/'.join(keys[:2])}...: {exc}")
            for k in keys:
                out[k] = FAIL
            if relay.proc is not None and not relay.proc.alive():
                raise BenchError(f"{relay.label} died: {relay.proc.stderr_tail(5)}")
