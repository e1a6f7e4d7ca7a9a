"""Tapes on disk: measuring what a recording wrote, and making tapes of a given
shape (many sessions, one huge session) without recording them for real."""

import hashlib
import random
import shutil
import socket
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

from .common import LOOPBACK, BenchError, warn
from .net import wait_listening_line
from .process import Proc

if TYPE_CHECKING:
    from .workload import Ctx

# The page size of a new tape (Tape.pageSize); docs/tape-format.md.
RECORDING_PAGE_SIZE = 32768


def measure_tape(path: Path) -> Dict[str, float]:
    """Size of a finished tape against the bytes it recorded. Called after
    the recorder exited cleanly; opens the tape read-only."""
    if not path.exists():
        raise BenchError(f"tape {path.name} was not written")
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        warn(f"tape {path.name}: write-ahead log of {wal.stat().st_size} bytes left after a clean "
             f"exit (not checkpointed); counted in the size")
        size += wal.stat().st_size
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        payload, sessions, event_sum = con.execute(
            "SELECT COALESCE(SUM(client_bytes + upstream_bytes), 0), COUNT(*), "
            "COALESCE(SUM(event_count), 0) FROM sessions").fetchone()
        events = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        data_events = con.execute("SELECT COUNT(*) FROM events WHERE kind = 0").fetchone()[0]
        open_runs = con.execute("SELECT COUNT(*) FROM runs WHERE ended_at IS NULL").fetchone()[0]
        outcomes = dict(con.execute("SELECT outcome, COUNT(*) FROM sessions GROUP BY outcome"))
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    if open_runs:
        warn(f"tape {path.name}: {open_runs} run(s) without an end time after a clean exit")
    if event_sum != events:
        warn(f"tape {path.name}: sessions.event_count sums to {event_sum}, events has {events} rows")
    unfinished = outcomes.get("incomplete", 0) + outcomes.get("interrupted", 0)
    if unfinished:
        warn(f"tape {path.name}: {unfinished} session(s) incomplete or interrupted: {outcomes}")
    if not events or not payload:
        raise BenchError(f"tape {path.name} recorded nothing ({events} events, {payload} bytes)")
    return {"size": size, "payload": payload, "events": events, "data_events": data_events,
            "sessions": sessions, "page_size": page_size,
            "ratio": size / payload, "overhead": (size - payload) / events,
            "mean_event": payload / max(1, data_events)}


def check_disk(ctx: "Ctx", need: float, what: str) -> None:
    free = shutil.disk_usage(ctx.tmp).free
    if free < need:
        raise BenchError(f"only {free / 1e9:.1f} GB free for the {what} tape "
                         f"(want {need / 1e9:.0f} GB)")


# ------------------------------------------------------- tapes of a given shape
#
# A tape of a given shape (100,000 sessions, or one session of a gigabyte) is
# made in two steps: `tapedeck record` writes a real tape of one small session,
# so that the schema, the metadata and GRDB's migration table are exactly what
# this tapedeck writes and accepts; then Python's sqlite3 adds (or replaces)
# sessions and events, following docs/tape-format.md. Crafted sessions copy
# the seed session's closing events (half-closes, closes), so they end the
# way a real one does.

SEED_REQUEST = b"GET /seed HTTP/1.1\r\nHost: bench\r\n\r\n"
SEED_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
DATA, CLIENT_TO_UPSTREAM, UPSTREAM_TO_CLIENT = 0, 0, 1  # event kind, directions
INSERT_EVENT = "INSERT INTO events(session_id, seq, offset_ns, direction, kind, payload)"


def record_seed_tape(tapedeck: str, path: Path, workdir: Path) -> None:
    """Record one real session into a new tape at `path`: `tapedeck record` in
    front of a one-shot upstream (a thread here) that answers SEED_REQUEST with
    SEED_REPLY and closes."""
    upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    upstream.bind((LOOPBACK, 0))
    upstream.listen(1)
    upstream.settimeout(30)
    problems: List[str] = []

    def serve() -> None:
        try:
            conn, _ = upstream.accept()
            with conn:
                conn.settimeout(30)
                got = b""
                for _ in range(1000):
                    if len(got) >= len(SEED_REQUEST):
                        break
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                conn.sendall(SEED_REPLY)
                conn.shutdown(socket.SHUT_WR)
                for _ in range(1000):
                    if not conn.recv(4096):
                        break
        except OSError as exc:
            problems.append(f"seed upstream: {exc}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    recorder = Proc(f"tapedeck-record-seed-{path.stem}",
                    [tapedeck, "record", "--listen", f"{LOOPBACK}:0", "--upstream",
                     f"{LOOPBACK}:{upstream.getsockname()[1]}", "--tape", str(path), "--overwrite"],
                    workdir)
    try:
        port = wait_listening_line(recorder, 30, "tapedeck record (seed tape)")
        reply = exchange(port, SEED_REQUEST, timeout=30)
        if reply != SEED_REPLY:
            raise BenchError(f"seed session: got {reply[:80]!r} through the recorder")
        thread.join(timeout=30)
    finally:
        rc = recorder.stop(grace=30)
        upstream.close()
    if problems:
        raise BenchError(problems[0])
    if rc != 0:
        raise BenchError(f"tapedeck record (seed tape) exited with {rc}: {recorder.stderr_tail(5)}")
    con = sqlite3.connect(str(path), timeout=10)
    try:
        sessions = con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    finally:
        con.close()
    if sessions != 1:
        raise BenchError(f"the seed tape holds {sessions} sessions, expected 1")


def exchange(port: int, request: bytes, timeout: float) -> bytes:
    """Send `request` to 127.0.0.1:port, then read until the server closes."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as conn:
        conn.sendall(request)
        reply = b""
        for _ in range(100_000):
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


def seed_session(con: sqlite3.Connection):
    """The seed session's row (as a dict) and its closing events: the events
    after its last data event, as (offset after that data event, direction,
    kind)."""
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM sessions ORDER BY id LIMIT 1").fetchone())
    events = con.execute("SELECT seq, offset_ns, direction, kind FROM events WHERE session_id = ? "
                         "ORDER BY seq", (row["id"],)).fetchall()
    con.row_factory = None
    last_data = max((i for i, e in enumerate(events) if e["kind"] == DATA), default=-1)
    base = events[last_data]["offset_ns"] if last_data >= 0 else 0
    closing = [(e["offset_ns"] - base, e["direction"], e["kind"]) for e in events[last_data + 1:]]
    return row, closing


def add_sessions(path: Path, count: int) -> None:
    """Add `count` small sessions to a seed tape (one route, one run): each a
    distinct HTTP-like request (`GET /items/N`), the seed's reply, and the
    seed's closing events. Inserted in SQL, so 100,000 take about a second."""
    con = sqlite3.connect(str(path), timeout=10)
    try:
        seed, closing = seed_session(con)
        start = con.execute("SELECT COALESCE(MAX(id), 0) FROM sessions").fetchone()[0] + 1
        request = "'GET /items/' || i || ' HTTP/1.1' || char(13, 10) || 'Host: bench' || char(13, 10, 13, 10)"
        events = 2 + len(closing)
        con.execute("PRAGMA synchronous = OFF")
        con.execute("CREATE TEMP TABLE n(i INTEGER PRIMARY KEY)")
        con.execute(f"WITH RECURSIVE c(i) AS (SELECT {start} UNION ALL SELECT i + 1 FROM c "
                    f"WHERE i < {start + count - 1}) INSERT INTO n SELECT i FROM c")
        con.execute(
            "INSERT INTO sessions(id, run_id, route_id, route, client_address, upstream_address, started_at, "
            "ended_at, duration_ns, outcome, client_bytes, upstream_bytes, event_count) "
            f"SELECT i, ?, ?, ?, '127.0.0.1:' || (10000 + i % 50000), ?, ? + i * 1000000, "
            f"? + i * 1000000 + 500000, 500000, 'closed', length(CAST({request} AS BLOB)), ?, {events} FROM n",
            (seed["run_id"], seed["route_id"], seed["route"], seed["upstream_address"], seed["started_at"],
             seed["started_at"], len(SEED_REPLY)))
        con.execute(f"{INSERT_EVENT} SELECT i, 0, 100000, {CLIENT_TO_UPSTREAM}, {DATA}, "
                    f"CAST({request} AS BLOB) FROM n")
        con.execute(f"{INSERT_EVENT} SELECT i, 1, 200000, {UPSTREAM_TO_CLIENT}, {DATA}, ? FROM n",
                    (SEED_REPLY,))
        for seq, (offset, direction, kind) in enumerate(closing, start=2):
            con.execute(f"{INSERT_EVENT} SELECT i, {seq}, {200000 + offset}, {direction}, {kind}, NULL FROM n")
        con.execute("DROP TABLE n")
        con.commit()
    finally:
        con.close()


def make_download(path: Path, size: int, event_size: int, request: bytes,
                  copy_to: Optional[Path] = None) -> str:
    """Replace the seed tape's session with one download: `request` from the
    client, then `size` bytes from the upstream in events of `event_size`
    bytes (as a recording of a fast download has them), then the seed's
    closing events. The tape gets the page size a recording gets. The bytes
    are pseudo-random and the same every time; returns their SHA-256 (hex),
    and also writes them to `copy_to` (for a live upstream to serve)."""
    digest = hashlib.sha256()
    rng = random.Random(20260101)
    con = sqlite3.connect(str(path), timeout=10, isolation_level=None)
    out = open(copy_to, "wb") if copy_to is not None else None
    try:
        seed, closing = seed_session(con)
        page = con.execute("PRAGMA page_size").fetchone()[0]
        if page != RECORDING_PAGE_SIZE:
            # Small finished tapes are rewritten with 4 KiB pages; a real
            # gigabyte recording keeps the 32 KiB pages it was made with.
            con.execute(f"PRAGMA page_size = {RECORDING_PAGE_SIZE}")
            con.execute("VACUUM")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("BEGIN")
        con.execute("DELETE FROM events")
        con.execute("DELETE FROM sessions")
        chunks = -(-size // event_size)
        # Offsets as if the download ran at about 2 GB/s.
        per_chunk = max(1, event_size // 2)
        con.execute(
            "INSERT INTO sessions(id, run_id, route_id, route, client_address, upstream_address, started_at, "
            "ended_at, duration_ns, outcome, client_bytes, upstream_bytes, event_count) "
            "VALUES (1, ?, ?, ?, '127.0.0.1:40000', ?, ?, ?, ?, 'closed', ?, ?, ?)",
            (seed["run_id"], seed["route_id"], seed["route"], seed["upstream_address"], seed["started_at"],
             seed["started_at"] + (chunks + 2) * per_chunk, (chunks + 2) * per_chunk, len(request), size,
             1 + chunks + len(closing)))
        con.execute(f"{INSERT_EVENT} VALUES (1, 0, 0, ?, ?, ?)", (CLIENT_TO_UPSTREAM, DATA, request))
        left = size
        for seq in range(1, chunks + 1):
            chunk = rng.randbytes(min(event_size, left))
            left -= len(chunk)
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
            con.execute(f"{INSERT_EVENT} VALUES (1, ?, ?, ?, ?, ?)",
                        (seq, seq * per_chunk, UPSTREAM_TO_CLIENT, DATA, chunk))
        for seq, (offset, direction, kind) in enumerate(closing, start=chunks + 1):
            con.execute(f"{INSERT_EVENT} VALUES (1, ?, ?, ?, ?, NULL)",
                        (seq, chunks * per_chunk + offset, direction, kind))
        con.execute("COMMIT")
    finally:
        con.close()
        if out is not None:
            out.close()
    return digest.hexdigest()
