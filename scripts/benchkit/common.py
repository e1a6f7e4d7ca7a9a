"""Constants, logging and the error types shared by every module of the harness."""

import shutil
import sys
import time
from pathlib import Path
from typing import List

PACKAGE_DIR = Path(__file__).resolve().parent
SCRIPT_DIR = PACKAGE_DIR.parent
REPO = SCRIPT_DIR.parent
LOOPBACK = "127.0.0.1"
FAIL = "fail"
NA = "n/a"

# Problems seen during the run: a dry run exits non-zero if there are any.
failures: List[str] = []
# Skipped workloads and parts, with the reason (a tool not installed or not built).
skipped: List[str] = []
# Pauses between measurements (letting sockets settle) are scaled by this; a
# dry run shortens them.
pause_scale = 1.0


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {msg}", file=sys.stderr, flush=True)


def warn(msg: str) -> None:
    log(f"WARNING: {msg}")


def fail(msg: str) -> None:
    """Warn about a measurement that failed, and remember it."""
    failures.append(msg)
    warn(msg)


def skip(msg: str) -> None:
    """Note something left out because a tool it needs is missing."""
    skipped.append(msg)
    log(f"skipped: {msg}")


def pause(seconds: float) -> None:
    time.sleep(seconds * pause_scale)


class BenchError(Exception):
    pass


class Skip(BenchError):
    """A workload or a part of one that cannot run here because a tool it needs
    is not installed (or not built): reported as skipped, not as a failure."""


def require_tools(*tools: str) -> None:
    """Raise Skip unless every tool is on PATH."""
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        raise Skip(f"{', '.join(missing)} not installed")
