"""Loopback ports: picking free ones, waiting until a server listens, and the
kernel's view of TIME_WAIT sockets and ephemeral ports."""

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from .common import LOOPBACK, BenchError, warn
from .process import Proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def free_udp_port(tcp_too: bool = False) -> int:
    """A loopback port free for UDP (and for TCP as well, if asked: a DNS
    server binds both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if not tcp_too:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((LOOPBACK, port))
            return port
        except OSError:
            continue
    raise BenchError("no loopback port free for both UDP and TCP")


_HAVE_SS = shutil.which("ss") is not None


def is_listening(port: int) -> bool:
    """True if something listens on 127.0.0.1:port (or the wildcard address).
    Checked without connecting, so one-shot servers are not disturbed."""
    if _HAVE_SS:
        try:
            out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"],
                                 capture_output=True, timeout=5, text=True).stdout
            return bool(out.strip())
        except (subprocess.TimeoutExpired, OSError):
            pass
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A" and parts[1].endswith(want):
                        return True
        except OSError:
            continue
    return False


def is_udp_bound(port: int) -> bool:
    """True if a UDP socket is bound to 127.0.0.1:port (or the wildcard address)."""
    if _HAVE_SS:
        try:
            out = subprocess.run(["ss", "-Hlun", f"sport = :{port}"],
                                 capture_output=True, timeout=5, text=True).stdout
            return bool(out.strip())
        except (subprocess.TimeoutExpired, OSError):
            pass
    want = f":{port:04X}"
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[1].endswith(want):
                        return True
        except OSError:
            continue
    return False


def wait_udp_bound(port: int, proc: Optional[Proc], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if is_udp_bound(port):
            return
        if proc is not None and not proc.alive():
            raise BenchError(f"{what} exited (rc={proc.p.returncode}) before binding UDP port "
                             f"{port}: {proc.stderr_tail(5)}")
        if time.monotonic() > deadline:
            break
        time.sleep(0.03)
    raise BenchError(f"{what} not bound to UDP {LOOPBACK}:{port} after {timeout:.0f}s")


def wait_listening(port: int, proc: Optional[Proc], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if is_listening(port):
            return
        if proc is not None and not proc.alive():
            raise BenchError(f"{what} exited (rc={proc.p.returncode}) before listening: "
                             f"{proc.stderr_tail(5)}")
        if time.monotonic() > deadline:
            break
        time.sleep(0.03)
    raise BenchError(f"{what} not listening on {LOOPBACK}:{port} after {timeout:.0f}s")


# A UDP route's address reads udp:HOST:PORT.
LISTENING_RE = re.compile(r"^listening\s+(\S+)\s+(?:udp:)?(\S+):(\d+)\s*$")


def wait_listening_line(proc: "Proc", timeout: float, label: str, poll: float = 0.02) -> int:
    """Port from the "listening ROUTE HOST:PORT" (or "udp:HOST:PORT") line a
    tapedeck command prints on stdout once bound; the host must be the
    loopback address."""
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        text = proc.stdout_text()
        complete = text.splitlines()[:text.count("\n")]
        for i, line in enumerate(complete):
            m = LISTENING_RE.match(line)
            if not m:
                continue
            if i:
                warn(f"{label}: {i} unexpected stdout line(s) before the listening "
                     f"line, first: {complete[0]!r}")
            if m.group(2) != LOOPBACK:
                raise BenchError(f"{label}: bound to {m.group(2)}, expected {LOOPBACK}")
            return int(m.group(3))
        if not proc.alive():
            raise BenchError(f"{label} exited (rc={proc.p.returncode}) before "
                             f"printing its listening line: {proc.stderr_tail(5)}")
        if time.monotonic() > deadline:
            break
        time.sleep(poll)
    raise BenchError(f"{label}: no 'listening' line on stdout within {timeout:.0f}s")


def tcp_time_wait() -> Optional[int]:
    """TCP sockets in TIME_WAIT in this network namespace, from /proc/net/sockstat."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    parts = line.split()
                    return int(parts[parts.index("tw") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def ephemeral_ports() -> int:
    """How many local ports connect() picks from (net.ipv4.ip_local_port_range)."""
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return max(1, hi - lo + 1)
    except (OSError, ValueError):
        return 28232  # the Linux default, 32768-60999
