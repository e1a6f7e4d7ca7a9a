"""The relays the harness compares (contestants) and one running instance of
one of them (Relay)."""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

from .common import BenchError, fail
from .net import free_port, wait_listening, wait_listening_line
from .process import Proc, process_tree

if TYPE_CHECKING:
    from .workload import Ctx


@dataclass
class ContestantSpec:
    """How to run one relay. Add a contestant by adding one entry to
    CONTESTANTS.

    argv      command template; None means no relay (clients go straight
              to the upstream). Placeholders: {port} (a free port picked by
              the script, for port="pick"), {upstream_port}, {dir} (a fresh
              per-instance temp dir, removed after the instance stops),
              {config} (the rendered config file), {tapedeck}, {maxconn}.
    port      "pick": the script picks a free port and passes it as {port};
              "stdout": the relay binds port 0 and prints
              "listening ROUTE HOST:PORT" on stdout once bound.
    config    optional (file name, template) written into {dir}.
    needs     executable (template) that must exist, else the contestant is
              skipped with a warning.
    rss       which processes make up the relay's memory: "tree" = the
              started process plus all of its descendants.
    clean_exit  expect exit code 0 after SIGTERM (warn otherwise).
    default   part of the default --contestants list.
    default_workloads  if set (and default is False), the contestant is also
              run by default, but only in these workloads.
    tape      the relay records into this file (template, inside {dir});
              workloads measure the tape after a clean stop.
    """
    name: str
    argv: Optional[List[str]]
    port: str = "pick"
    config: Optional[tuple] = None
    needs: Optional[str] = None
    rss: str = "tree"
    clean_exit: bool = False
    default: bool = True
    default_workloads: Tuple[str, ...] = ()
    tape: Optional[str] = None
    stop_grace: float = 5.0
    ready_timeout: float = 30.0
    note: str = ""


HAPROXY_CFG = """\
global
    maxconn {maxconn}

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend bench_in
    bind 127.0.0.1:{port}
    default_backend bench_up

backend bench_up
    server up1 127.0.0.1:{upstream_port}
"""

CONTESTANTS: List[ContestantSpec] = [
    ContestantSpec("direct", None, note="no relay"),
    ContestantSpec(
        "socat",
        ["socat", "TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr,backlog=1024",
         "TCP:127.0.0.1:{upstream_port}"],
        needs="socat", note="one forked process per connection"),
    ContestantSpec(
        "haproxy", ["haproxy", "-f", "{config}", "-db"],
        config=("haproxy.cfg", HAPROXY_CFG), needs="haproxy",
        note="mode tcp, default threading"),
    ContestantSpec(
        "tapedeck",
        ["{tapedeck}", "proxy", "--listen", "127.0.0.1:0",
         "--upstream", "127.0.0.1:{upstream_port}"],
        port="stdout", needs="{tapedeck}", clean_exit=True, stop_grace=10.0,
        note="proxy mode"),
    # Recording mode; by default only in bulk and rr (name it in --contestants
    # for other workloads). The tape lives in the per-instance temp dir, which
    # is deleted after every run; bulk restarts the recorder for every case so
    # that each tape holds one iperf3 run (about a gigabyte).
    ContestantSpec(
        "tapedeck-record",
        ["{tapedeck}", "record", "--listen", "127.0.0.1:0",
         "--upstream", "127.0.0.1:{upstream_port}", "--tape", "{dir}/bench.tape"],
        port="stdout", needs="{tapedeck}", clean_exit=True, stop_grace=30.0, default=False,
        default_workloads=("bulk", "rr"), tape="{dir}/bench.tape",
        note="record mode, tape in a temp dir"),
]
SPECS = {c.name: c for c in CONTESTANTS}


class Relay:
    """One running instance of a contestant in front of one upstream port."""

    def __init__(self, spec: ContestantSpec, ctx: "Ctx", upstream_port: int, label: str):
        self.spec = spec
        self.ctx = ctx
        self.upstream_port = upstream_port
        self.label = label
        self.proc: Optional[Proc] = None
        self.port = upstream_port
        self.dir: Optional[Path] = None
        self.tape: Optional[Path] = None
        self.starts = 0
        self.sent: Optional[int] = None  # bytes the last bulk run relayed

    def subst(self, s: str, values: dict) -> str:
        return s.format(**values)

    def start(self) -> "Relay":
        spec = self.spec
        if spec.argv is None:
            return self
        self.dir = Path(tempfile.mkdtemp(prefix=f"{spec.name}-", dir=self.ctx.tmp))
        self.starts += 1
        values = {
            "port": free_port() if spec.port == "pick" else 0,
            "upstream_port": self.upstream_port,
            "dir": str(self.dir),
            "tapedeck": self.ctx.tapedeck,
            "maxconn": self.ctx.maxconn,
            "config": "",
        }
        if spec.config:
            fname, template = spec.config
            cfg = self.dir / fname
            cfg.write_text(template.format(**values))
            values["config"] = str(cfg)
        argv = [self.subst(a, values) for a in spec.argv]
        self.tape = Path(self.subst(spec.tape, values)) if spec.tape else None
        label = self.label if self.starts == 1 else f"{self.label}-{self.starts}"
        self.proc = Proc(label, argv, self.dir)
        if spec.port == "pick":
            self.port = values["port"]
            wait_listening(self.port, self.proc, spec.ready_timeout, self.label)
        elif spec.port == "stdout":
            self.port = self._wait_listening_line(spec.ready_timeout)
        else:
            raise BenchError(f"{spec.name}: unknown port mode {spec.port!r}")
        return self

    def _wait_listening_line(self, timeout: float) -> int:
        return wait_listening_line(self.proc, timeout, self.label)

    def pids(self) -> List[int]:
        if self.proc is None:
            return []
        if self.spec.rss == "tree":
            return process_tree(self.proc.pid)
        return [self.proc.pid]

    def check_alive(self) -> None:
        if self.proc is not None and not self.proc.alive():
            raise BenchError(f"{self.label} died (rc={self.proc.p.returncode}): "
                             f"{self.proc.stderr_tail(5)}")

    def stop(self, inspect: Optional[Callable[[Path], None]] = None) -> None:
        """Stop the relay (SIGTERM), then delete its temp dir (and tape).
        `inspect(tape)` runs in between, only if the relay exited with 0; if
        it did not, BenchError is raised (after the cleanup)."""
        bad_exit = None
        try:
            if self.proc is not None:
                was_alive = self.proc.alive()
                rc = self.proc.stop(grace=self.spec.stop_grace)
                if self.spec.clean_exit and was_alive and rc != 0:
                    fail(f"{self.label} exited with {rc} after SIGTERM (expected 0); "
                         f"stderr tail:\n{self.proc.stderr_tail(5)}")
                if inspect is not None:
                    if not was_alive or rc != 0:
                        bad_exit = f"{self.label} did not exit cleanly (rc={rc}); tape not measured"
                    elif self.tape is not None:
                        inspect(self.tape)
        finally:
            if self.dir is not None and not self.ctx.keep_tmp:
                shutil.rmtree(self.dir, ignore_errors=True)
            elif self.tape is not None:  # --keep-tmp keeps the logs, never the tapes
                for suffix in ("", "-wal", "-shm", "-journal"):
                    try:
                        os.unlink(f"{self.tape}{suffix}")
                    except OSError:
                        pass
            self.dir = None
            self.tape = None
        if bad_exit:
            raise BenchError(bad_exit)
