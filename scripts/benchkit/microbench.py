"""`tapedeck-microbench`, the Benchmarks package's one-shot commands: the tape
store alone (the ceiling recording is compared with) and the cost of choosing
a session in replay. Built apart from the product, with

    swift build -c release --package-path Benchmarks --product tapedeck-microbench
"""

import json
import os
from pathlib import Path
from typing import Dict, Optional

from .common import REPO, BenchError, Skip
from .process import run_cmd

BUILD_HINT = "swift build -c release --package-path Benchmarks --product tapedeck-microbench"
DEFAULT_PATH = REPO / "Benchmarks" / ".build" / "release" / "tapedeck-microbench"


def require(path: str) -> str:
    """The executable's path; Skip if it has not been built."""
    if not os.access(path, os.X_OK):
        try:
            shown = str(Path(path).resolve().relative_to(REPO))
        except ValueError:
            shown = path
        raise Skip(f"{shown} not built (`{BUILD_HINT}`)")
    return path


def run_json(argv, timeout: float, what: str) -> Dict[str, object]:
    cp = run_cmd(argv, timeout=timeout, name=what)
    lines = cp.stdout.decode(errors="replace").strip().splitlines()
    if cp.returncode != 0 or not lines:
        raise BenchError(f"{what} rc={cp.returncode}: {cp.stderr.decode(errors='replace')[-300:]}")
    return json.loads(lines[-1])


def store(binary: str, tape: Path, events: int, size: int, page: Optional[int] = None,
          sessions: Optional[int] = None) -> Dict[str, object]:
    """`tapedeck-microbench store`: events x size bytes into a scratch tape."""
    argv = [require(binary), "store", "--tape", str(tape), "--events", str(events), "--size", str(size)]
    if page:
        argv += ["--page-size", str(page)]
    if sessions:
        argv += ["--sessions", str(sessions)]
    return run_json(argv, 300, "tapedeck-microbench store")


def replay_choice(binary: str, sessions: int, connections: int) -> float:
    """`tapedeck-microbench replay-choice`: nanoseconds per connection."""
    res = run_json([require(binary), "replay-choice", "--sessions", str(sessions),
                    "--connections", str(connections)], 300, "tapedeck-microbench replay-choice")
    ns = float(res["nanoseconds_per_connection"])
    if not ns > 0:
        raise BenchError(f"replay-choice reported {ns} ns per connection")
    return ns
