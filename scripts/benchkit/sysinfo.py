"""What the machine and the processes under test are doing: memory and CPU of
a process from /proc, and the facts about the machine that head a report."""

import os
import platform
import resource
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .process import proc_stat, run_bounded


def read_status_kib(pid: int, keys=("VmRSS", "VmHWM")) -> Dict[str, int]:
    out = {k: 0 for k in keys}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in out:
                    out[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


def read_pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_of(pids: List[int]) -> Dict[str, int]:
    tot = {"rss": 0, "hwm": 0, "pss": 0, "procs": 0}
    for pid in pids:
        st = read_status_kib(pid)
        if st["VmRSS"] == 0 and proc_stat(pid) is None:
            continue
        tot["rss"] += st["VmRSS"]
        tot["hwm"] += st["VmHWM"]
        tot["pss"] += read_pss_kib(pid)
        tot["procs"] += 1
    return tot


def thread_ticks(pid: int) -> Dict[int, Tuple[str, int]]:
    """{tid: (name, utime + stime in clock ticks)} for the threads of pid."""
    out: Dict[int, Tuple[str, int]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        name = data[data.find("(") + 1:data.rfind(")")]
        rest = data[data.rfind(")") + 2:].split()
        try:
            out[int(tid)] = (name, int(rest[11]) + int(rest[12]))
        except (IndexError, ValueError):
            continue
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def thread_cpu(pid: int, before: Dict[int, Tuple[str, int]], seconds: float) -> Dict[str, float]:
    """CPU use of pid's threads since `before`, in % of one core: the event
    loops (threads named NIO-*) together, and the busiest other thread (in a
    recorder that is the tape writer; its OS thread name is not reliable)."""
    after = thread_ticks(pid)
    loops, other = 0, 0
    for tid, (name, ticks) in after.items():
        delta = ticks - before.get(tid, (name, 0))[1]
        if name.startswith("NIO-"):
            loops += delta
        elif tid != pid:
            other = max(other, delta)
    scale = 100.0 / CLK_TCK / max(seconds, 1e-3)
    return {"loops": loops * scale, "writer": other * scale}



def process_cpu_seconds(pid: int) -> Optional[float]:
    """User + system CPU seconds of pid so far (all its threads), or None if
    it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    if len(rest) < 13:
        return None
    return (int(rest[11]) + int(rest[12])) / CLK_TCK

def tool_version(argv: List[str], pick: Callable[[str], str] = lambda s: s.splitlines()[0]) -> str:
    try:
        cp = run_bounded(argv, timeout=10)
        text = (cp.stdout or cp.stderr).decode(errors="replace").strip()
        if cp.returncode != 0 or not text:
            return "unknown"
        return pick(text).strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def fs_type(path: Path) -> str:
    """Filesystem type of the mount holding path (from /proc/self/mounts)."""
    best, kind = "", "unknown"
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def cpu_busy_percent(seconds: float = 1.0) -> Optional[float]:
    """Share of all CPUs busy over `seconds` (everything on the machine)."""
    def sample():
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]), idle
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError):
        return None
    return 100.0 * (1 - (i1 - i0) / (t1 - t0)) if t1 > t0 else None


def sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return "unknown"


def port_range() -> str:
    return "-".join(sysctl("net/ipv4/ip_local_port_range").split())


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 262144
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard if hard != resource.RLIM_INFINITY else 1 << 20
