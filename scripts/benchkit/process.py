"""Child processes: starting them so that they die with the harness, running
commands with a time limit, and stopping every process (and its descendants)
by its own PID."""

import atexit
import ctypes
import os
import resource
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .common import BenchError, warn

try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except Exception:  # pragma: no cover - non-glibc systems
    _PRCTL = None
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    # If this script dies without cleaning up, its direct children get SIGTERM.
    if _PRCTL is not None:
        try:
            _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except Exception:
            pass


def proc_stat(pid: int):
    """(ppid, starttime) of pid, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    if len(rest) < 20:
        return None
    return int(rest[1]), int(rest[19])


def process_tree(root: int) -> List[int]:
    """root followed by all of its live descendants."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry))
    out, todo, seen = [], [root], set()
    for _ in range(1_000_000):  # bounded walk
        if not todo:
            break
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def alive_same(pid: int, starttime: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[1] == starttime


class Proc:
    """A child process we started; stopped only by its own PID (and the PIDs
    of its descendants, snapshotted before the stop)."""

    live: List["Proc"] = []

    def __init__(self, name: str, argv: List[str], logdir: Path,
                 env: Optional[dict] = None):
        self.name = name
        self.argv = argv
        self.stdout_path = logdir / f"{name}.stdout"
        self.stderr_path = logdir / f"{name}.stderr"
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        try:
            self.p = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                close_fds=True, start_new_session=True,
                preexec_fn=_child_setup, env=env)
        finally:
            out.close()
            err.close()
        self.pid = self.p.pid
        Proc.live.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def stdout_text(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr_tail(self, n: int = 15) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, grace: float = 5.0, sig: int = signal.SIGTERM) -> Optional[int]:
        """Signal the process, wait up to `grace` seconds, then SIGKILL it.
        Leftover descendants (e.g. socat's forked children) are stopped the
        same way, each by PID. Returns the exit code of the root."""
        desc = []
        if self.alive():
            for pid in process_tree(self.pid)[1:]:
                st = proc_stat(pid)
                if st is not None:
                    desc.append((pid, st[1]))
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                warn(f"{self.name} (pid {self.pid}) still running {grace:.0f}s after "
                     f"signal {sig}; sending SIGKILL")
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    warn(f"{self.name} (pid {self.pid}) did not die after SIGKILL")
        rc = self.p.poll()
        # Descendants normally exit once their connections are gone.
        deadline = time.monotonic() + 2.0
        for s in (signal.SIGTERM, signal.SIGKILL):
            pending = [(p, t) for p, t in desc if alive_same(p, t)]
            if not pending:
                break
            for pid, t in pending:
                try:
                    os.kill(pid, s)
                except ProcessLookupError:
                    pass
            for _ in range(100):
                if not any(alive_same(p, t) for p, t in pending) or time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            deadline = time.monotonic() + 2.0
        if self in Proc.live:
            Proc.live.remove(self)
        return rc

    @classmethod
    def stop_all(cls) -> None:
        for proc in list(reversed(cls.live)):
            try:
                proc.stop(grace=3.0)
            except Exception as exc:  # keep cleaning up the rest
                warn(f"cleanup of {proc.name}: {exc}")


atexit.register(Proc.stop_all)


def _kill_tree_and_reap(p: subprocess.Popen) -> None:
    """Kill a command and everything it started, each by PID, then reap it."""
    for pid in reversed(process_tree(p.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.communicate()


def run_bounded(argv: List[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a command to completion. On timeout (or any interruption) the
    command and everything it started are killed, each by PID, and
    subprocess.TimeoutExpired / the interruption propagates."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, close_fds=True, preexec_fn=_child_setup)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        _kill_tree_and_reap(p)
        raise
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def run_cmd(argv: List[str], timeout: float, name: str) -> subprocess.CompletedProcess:
    """Run a client to completion (bounded by timeout)."""
    try:
        return run_bounded(argv, timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{name} timed out after {timeout:.0f}s") from exc


def run_watched(argv: List[str], timeout: float, name: str,
                watch: List[Proc]) -> Tuple[subprocess.CompletedProcess, Dict[str, float]]:
    """Run a client to completion like run_cmd, but give up as soon as one of
    the `watch` processes (its servers) exits: redis-benchmark -k 0 facing a
    closed port spins at full CPU until it is killed. Also returns the
    client's CPU time (user, sys, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, close_fds=True, preexec_fn=_child_setup)
    try:
        for _ in range(int(timeout) + 10):  # one-second steps, bounded by the deadline
            try:
                out, err = p.communicate(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                pass
            dead = [w for w in watch if not w.alive()]
            if dead:
                raise BenchError(f"{dead[0].name} exited (rc={dead[0].p.returncode}) while "
                                 f"{name} ran: {dead[0].stderr_tail(3)}")
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"{name} timed out after {timeout:.0f}s")
        else:
            raise BenchError(f"{name} timed out after {timeout:.0f}s")
    except BaseException:
        _kill_tree_and_reap(p)
        raise
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
           "wall": wall}
    return subprocess.CompletedProcess(argv, p.returncode, out, err), cpu
