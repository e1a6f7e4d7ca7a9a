"""run: what `tapedeck run` adds to a short test command, in proxy and replay
mode."""

import os
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from ..common import FAIL, LOOPBACK, BenchError, fail, log, require_tools
from ..net import free_port, wait_listening
from ..process import Proc, run_cmd
from ..report import rec_median
from ..workload import Ctx, Workload


class RunCommand(Workload):
    """What `tapedeck run` adds to a test command: the wall time of
    `sh -c 'redis-cli -p $PORT PING'` run N times straight against a
    redis-server, and the same command wrapped in `tapedeck run` in proxy
    mode (in front of the same server) and in replay mode (no server; the
    tape is recorded in the first round with `tapedeck run --mode record`).
    Process start, deck start and stop and the command itself are all
    included; the difference is the per-invocation cost of wrapping."""
    key = "run"
    title = "run"
    per_contestant = False
    INVOCATIONS = 20
    DRY_RUN_INVOCATIONS = 2
    SCRIPT = 'redis-cli -h "$TAPEDECK_HOST" -p "$TAPEDECK_PORT" PING >/dev/null'

    def __init__(self):
        self.tape: Optional[Path] = None

    def metrics(self, args):
        return []

    def setup(self, ctx):
        require_tools("redis-server", "redis-cli")
        return 0

    def section(self, ctx, names, results, keys):
        return run_section(ctx)

    @classmethod
    def invocations(cls, ctx: Ctx) -> int:
        return cls.DRY_RUN_INVOCATIONS if ctx.dry_run else cls.INVOCATIONS

    def per_invocation(self, ctx: Ctx, argv: List[str], env: Dict[str, str]) -> float:
        t0 = time.monotonic()
        count = self.invocations(ctx)
        for _ in range(count):
            cp = subprocess.run(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, timeout=60)
            if cp.returncode != 0:
                raise BenchError(f"{' '.join(argv[:3])} rc={cp.returncode}: {cp.stderr.decode()[-300:]}")
        return (time.monotonic() - t0) / count

    def run_round(self, ctx):
        keys = ("run_direct", "run_proxy", "run_replay")
        port = free_port()
        srv = Proc(f"redis-server-run-{port}",
                   ["redis-server", "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--logfile", ""], ctx.tmp)
        try:
            wait_listening(port, srv, 15, "redis-server")
            upstream = f"{LOOPBACK}:{port}"
            if self.tape is None:
                self.tape = ctx.tmp / "run-bench.tape"
                cp = run_cmd([ctx.tapedeck, "run", "--tape", str(self.tape), "--mode", "record", "--upstream",
                              upstream, "--", "sh", "-c", self.SCRIPT], timeout=60, name="tapedeck run record")
                if cp.returncode != 0:
                    raise BenchError(f"recording the tape: rc={cp.returncode}")
            direct = self.per_invocation(ctx, ["sh", "-c", self.SCRIPT],
                                         {"TAPEDECK_HOST": LOOPBACK, "TAPEDECK_PORT": str(port)})
            proxy = self.per_invocation(ctx, [ctx.tapedeck, "run", "--mode", "proxy", "--upstream", upstream,
                                              "--", "sh", "-c", self.SCRIPT], {})
            srv.stop(grace=5)
            # --repeat: every invocation replays the one recorded session.
            replay = self.per_invocation(ctx, [ctx.tapedeck, "run", "--tape", str(self.tape), "--mode", "replay",
                                               "--repeat", "--", "sh", "-c", self.SCRIPT], {})
            for key, value in zip(keys, (direct, proxy, replay)):
                ctx.rec(key, value)
            log(f"  run: direct {direct * 1000:.1f} ms, run proxy {proxy * 1000:.1f} ms, "
                f"run replay {replay * 1000:.1f} ms per invocation")
        except Exception as exc:
            fail(f"run: {exc}")
            for key in keys:
                ctx.rec(key, FAIL)
        finally:
            srv.stop(grace=5)


def run_section(ctx: Ctx) -> str:
    direct = rec_median(ctx, "run_direct")[0]
    proxy = rec_median(ctx, "run_proxy")[0]
    replay = rec_median(ctx, "run_replay")[0]
    if not (direct and proxy and replay):
        return "### `tapedeck run`\n\nfailed; see the log.\n"
    return "\n".join([
        "### `tapedeck run`\n",
        f"Wall time per invocation of `sh -c 'redis-cli PING'`, median of rounds, {RunCommand.invocations(ctx)} "
        "invocations each: process start, deck start and stop, and the command.\n",
        "| how | per invocation | added by `tapedeck run` |", "|---|---:|---:|",
        f"| direct, against redis-server | {direct * 1000:.1f} ms | |",
        f"| `tapedeck run --mode proxy` | {proxy * 1000:.1f} ms | {(proxy - direct) * 1000:.1f} ms |",
        f"| `tapedeck run` (replay, no server) | {replay * 1000:.1f} ms | {(replay - direct) * 1000:.1f} ms |",
    ]) + "\n"
