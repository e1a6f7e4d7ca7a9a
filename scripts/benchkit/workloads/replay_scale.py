"""replay-scale: replay of tapes far larger than a test fixture.

- download: a tape of ONE session, a client's small request and 1 GiB from
  the upstream in 64 KiB events (as a recording of a fast download has them).
  How long `tapedeck replay` takes to listen, its peak memory, whether the
  client gets the bytes byte-exact, and how fast, against `tapedeck proxy`
  relaying the same bytes live from a simple upstream.
- sessions: a tape of 100,000 small sessions: how long replay takes to listen.

Both tapes are made once per invocation (tapes.py: recorded seed, then
SQLite) and kept across rounds. Run it alone with `--only replay-scale`.
"""

import hashlib
import socket
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from ..common import FAIL, LOOPBACK, PACKAGE_DIR, BenchError, fail, log, pause
from ..net import free_port, wait_listening, wait_listening_line
from ..process import Proc
from ..report import rec_median
from ..sysinfo import read_status_kib
from ..tapes import SEED_REPLY, add_sessions, check_disk, make_download, record_seed_tape
from ..workload import Ctx, Workload

MIB = 1 << 20
REQUEST = b"GET /download HTTP/1.1\r\nHost: bench\r\n\r\n"
RATIO_TARGET = 0.8      # replay MB/s, x proxy relaying the same download live
LISTEN_TARGET = 2.0     # seconds until replay of the many-sessions tape listens


class ReplayScale(Workload):
    key = "replay-scale"
    title = "replay at scale"
    per_contestant = False
    DOWNLOAD = 1 << 30
    EVENT = 64 << 10
    SESSIONS = 100_000
    DRY_RUN_DOWNLOAD = 8 * MIB
    DRY_RUN_SESSIONS = 1_000
    LEGS = ["replay", "proxy", "direct"]

    def __init__(self):
        self.dir: Optional[Path] = None
        self.download_tape: Optional[Path] = None
        self.download_file: Optional[Path] = None
        self.digest = ""
        self.sessions_tape: Optional[Path] = None

    def metrics(self, args):
        return []

    def setup(self, ctx):
        return 0

    def sizes(self, ctx: Ctx) -> Tuple[int, int]:
        """(download bytes, sessions)."""
        if ctx.dry_run:
            return self.DRY_RUN_DOWNLOAD, self.DRY_RUN_SESSIONS
        return self.DOWNLOAD, self.SESSIONS

    def teardown(self, ctx):
        if self.dir is not None:
            for path in sorted(self.dir.iterdir(), reverse=True):
                try:
                    path.unlink()
                except OSError:
                    pass
            try:
                self.dir.rmdir()
            except OSError:
                pass
        self.dir = self.download_tape = self.download_file = self.sessions_tape = None

    # --- the tapes

    def make_tapes(self, ctx: Ctx) -> None:
        size, sessions = self.sizes(ctx)
        if self.dir is None:
            self.dir = ctx.tmp / "replay-scale"
            self.dir.mkdir()
        if self.download_tape is None:
            check_disk(ctx, 2.2 * size + 1e9, "replay-scale")
            t0 = time.monotonic()
            tape, data = self.dir / "download.tape", self.dir / "download.bin"
            record_seed_tape(ctx.tapedeck, tape, self.dir)
            self.digest = make_download(tape, size, self.EVENT, REQUEST, copy_to=data)
            self.download_tape, self.download_file = tape, data
            ctx.rec("scale_download_tape_mb", tape.stat().st_size / 1e6)
            log(f"  replay-scale: download tape of {size / MIB:,.0f} MiB in {size // self.EVENT:,} events "
                f"made in {time.monotonic() - t0:.1f}s ({tape.stat().st_size / 1e6:,.1f} MB)")
        if self.sessions_tape is None:
            t0 = time.monotonic()
            tape = self.dir / "sessions.tape"
            record_seed_tape(ctx.tapedeck, tape, self.dir)
            add_sessions(tape, sessions - 1)
            self.sessions_tape = tape
            ctx.rec("scale_sessions_tape_mb", tape.stat().st_size / 1e6)
            log(f"  replay-scale: tape of {sessions:,} sessions made in {time.monotonic() - t0:.1f}s "
                f"({tape.stat().st_size / 1e6:,.1f} MB)")

    # --- processes

    def start_tapedeck(self, ctx: Ctx, label: str, argv: List[str]) -> Tuple[Proc, int, float]:
        """Start a tapedeck command; (process, port, seconds until it printed
        its listening line)."""
        t0 = time.monotonic()
        proc = Proc(label, argv, self.dir)
        try:
            port = wait_listening_line(proc, 300, label, poll=0.005)
        except BaseException:
            proc.stop(grace=10)
            raise
        return proc, port, time.monotonic() - t0

    def stop_tapedeck(self, proc: Proc, what: str) -> None:
        rc = proc.stop(grace=60)
        if rc != 0:
            raise BenchError(f"{what} exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")

    # --- the client

    @staticmethod
    def download(port: int, digest=None) -> Tuple[int, float]:
        """Send the request, read until the server closes: (bytes, seconds from
        connect to the end). With `digest`, every byte also goes into it."""
        buf = bytearray(4 * MIB)
        view = memoryview(buf)
        total = 0
        t0 = time.perf_counter()
        with socket.create_connection((LOOPBACK, port), timeout=300) as conn:
            conn.sendall(REQUEST)
            for _ in range(10_000_000):
                n = conn.recv_into(buf)
                if not n:
                    break
                total += n
                if digest is not None:
                    digest.update(view[:n])
        return total, time.perf_counter() - t0

    # --- the legs

    def leg(self, ctx: Ctx, which: str) -> None:
        size, _ = self.sizes(ctx)
        tag = f"r{ctx.round + 1}"
        procs: List[Proc] = []
        try:
            if which == "replay":
                proc, port, listen = self.start_tapedeck(
                    ctx, f"tapedeck-replay-download-{tag}",
                    [ctx.tapedeck, "replay", "--tape", str(self.download_tape), "--listen", f"{LOOPBACK}:0",
                     "--repeat"])
                procs.append(proc)
                ctx.rec("scale_download_listen", listen)
                target = proc
            else:
                up = free_port()
                server = Proc(f"download-server-{which}-{tag}",
                              [sys.executable, str(PACKAGE_DIR / "download_server.py"), str(up),
                               str(self.download_file)], self.dir)
                procs.append(server)
                wait_listening(up, server, 15, "download server")
                port, target = up, server
                if which == "proxy":
                    proc, port, _ = self.start_tapedeck(
                        ctx, f"tapedeck-proxy-download-{tag}",
                        [ctx.tapedeck, "proxy", "--listen", f"{LOOPBACK}:0", "--upstream", f"{LOOPBACK}:{up}"])
                    procs.append(proc)
                    target = proc
            got, secs = self.download(port)
            if got != size:
                raise BenchError(f"{which}: the client got {got:,} of {size:,} bytes")
            ctx.rec(f"scale_{which}_mbps", size / secs / 1e6)
            hwm = read_status_kib(target.pid)["VmHWM"] / 1024 if which != "direct" else None
            if which == "replay":
                # The timed download hashes nothing (SHA-256 in Python is slower than loopback); a second
                # one, replayed again (--repeat), is checked byte for byte.
                digest = hashlib.sha256()
                got, _ = self.download(port, digest)
                exact = got == size and digest.hexdigest() == self.digest
                ctx.rec("scale_download_exact", 1 if exact else 0)
                if not exact:
                    raise BenchError(f"replay sent {got:,} bytes, SHA-256 {digest.hexdigest()[:16]}..., "
                                     f"recorded {size:,} bytes, SHA-256 {self.digest[:16]}...")
            if hwm is not None:
                ctx.rec(f"scale_{which}_hwm", hwm)
            log(f"  replay-scale {which:6s} {size / secs / 1e6:8,.0f} MB/s"
                + (f", peak RSS {hwm:,.0f} MiB" if hwm is not None else "")
                + (f", listening after {ctx.record['scale_download_listen'][ctx.round]:.3f}s"
                   if which == "replay" else ""))
        finally:
            for proc in reversed(procs):
                if proc.argv[0] == ctx.tapedeck:
                    self.stop_tapedeck(proc, proc.name)
                else:
                    proc.stop(grace=5)

    def many_sessions(self, ctx: Ctx) -> None:
        proc, port, listen = self.start_tapedeck(
            ctx, f"tapedeck-replay-sessions-r{ctx.round + 1}",
            [ctx.tapedeck, "replay", "--tape", str(self.sessions_tape), "--listen", f"{LOOPBACK}:0"])
        try:
            ctx.rec("scale_sessions_listen", listen)
            request = b"GET /items/77 HTTP/1.1\r\nHost: bench\r\n\r\n"
            with socket.create_connection((LOOPBACK, port), timeout=60) as conn:
                conn.sendall(request)
                reply = b""
                for _ in range(1000):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            if reply != SEED_REPLY:
                raise BenchError(f"replay of the sessions tape answered {reply[:60]!r}")
            ctx.rec("scale_sessions_hwm", read_status_kib(proc.pid)["VmHWM"] / 1024)
        finally:
            self.stop_tapedeck(proc, proc.name)
        log(f"  replay-scale sessions: listening after {listen:.3f}s, peak RSS "
            f"{ctx.record['scale_sessions_hwm'][ctx.round]:,.0f} MiB")

    def run_round(self, ctx):
        try:
            self.make_tapes(ctx)
        except Exception as exc:
            fail(f"replay-scale: making the tapes failed: {exc}")
            return
        shift = ctx.round % len(self.LEGS)
        for which in self.LEGS[shift:] + self.LEGS[:shift]:
            try:
                self.leg(ctx, which)
            except Exception as exc:
                fail(f"replay-scale {which}: {exc}")
                ctx.rec(f"scale_{which}_mbps", FAIL)
            pause(0.3)
        try:
            self.many_sessions(ctx)
        except Exception as exc:
            fail(f"replay-scale sessions: {exc}")
            ctx.rec("scale_sessions_listen", FAIL)

    # --- the report

    def section(self, ctx, names, results, keys):
        return scale_section(ctx, *self.sizes(ctx))

    method_md = """\
- replay-scale: two tapes, made once per invocation: `tapedeck record` writes one real
  session (so the schema, metadata and migrations are this build's), then Python's
  `sqlite3` replaces it with one download (a 40-byte request, then 1 GiB of
  pseudo-random bytes from the upstream in 16,384 events of 64 KiB, then the recorded
  session's closing events; the tape gets 32 KiB pages, as a recording does), or adds
  99,999 small sessions beside it (distinct `GET /items/N` requests). Each round, in an
  order that rotates: `tapedeck replay --tape T --listen 127.0.0.1:0 --repeat`, timed from
  its start to its `listening` line; a client reads the whole download, timed from
  connect to the server's close, hashing nothing, and then once more while hashing it
  (SHA-256, compared with the bytes written to the tape). Then the same timed download
  through `tapedeck proxy` from a small Python server that sends the same bytes from a
  file with sendfile(2), and straight from that server (`direct`). Peak RSS is VmHWM of
  the replay or proxy process after the timed download. The tape of 100,000 sessions is
  replayed without `--repeat`, timed to its `listening` line, and must answer one of
  its requests. Every tapedeck process must exit 0 on SIGTERM.
"""


def scale_section(ctx: Ctx, size: int, sessions: int) -> str:
    def med(key):
        return rec_median(ctx, key)[0]

    def per_round(key, spec):
        vals = ctx.record.get(key, {})
        return " / ".join(format(v, spec) if isinstance(v, (int, float)) else str(v)
                          for _, v in sorted(vals.items())) or "-"

    def num(v, spec, unit=""):
        return format(v, spec) + unit if v is not None else "-"

    replay, proxy, direct = med("scale_replay_mbps"), med("scale_proxy_mbps"), med("scale_direct_mbps")
    ratio = replay / proxy if replay is not None and proxy else None
    listen_big, listen_many = med("scale_download_listen"), med("scale_sessions_listen")
    exact = ctx.record.get("scale_download_exact", {})
    checked = [v for v in exact.values() if isinstance(v, int)]
    size_label = f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size / MIB:g} MiB"
    out = ["### Replay at scale (`tapedeck replay`)\n",
           f"One session of {size_label} from the upstream in {size // ReplayScale.EVENT:,} events of 64 KiB "
           f"(tape {num(med('scale_download_tape_mb'), ',.0f', ' MB')}), and a tape of {sessions:,} small "
           f"sessions ({num(med('scale_sessions_tape_mb'), ',.1f', ' MB')}). Download throughput counts from "
           f"connect to the server's close.\n",
           "| measurement | median | per round |", "|---|---:|---:|",
           f"| download tape: `tapedeck replay` start until listening (s) | {num(listen_big, '.3f')} | "
           f"{per_round('scale_download_listen', '.3f')} |",
           f"| download replayed byte-exact (SHA-256) | "
           f"{('yes' if all(checked) else 'no') if checked else '-'} | "
           f"{' / '.join('yes' if v else 'no' for v in checked) or '-'} |",
           f"| download via replay (MB/s) | {num(replay, ',.0f')} | {per_round('scale_replay_mbps', ',.0f')} |",
           f"| download via `tapedeck proxy` from the upstream (MB/s) | {num(proxy, ',.0f')} | "
           f"{per_round('scale_proxy_mbps', ',.0f')} |",
           f"| download straight from the upstream (MB/s) | {num(direct, ',.0f')} | "
           f"{per_round('scale_direct_mbps', ',.0f')} |",
           f"| replay / proxy | {num(ratio, '.2f')} | |",
           f"| replay peak RSS (VmHWM), download tape (MiB) | {num(med('scale_replay_hwm'), ',.0f')} | "
           f"{per_round('scale_replay_hwm', ',.0f')} |",
           f"| proxy peak RSS (VmHWM), same download (MiB) | {num(med('scale_proxy_hwm'), ',.0f')} | "
           f"{per_round('scale_proxy_hwm', ',.0f')} |",
           f"| {sessions:,} sessions: `tapedeck replay` start until listening (s) | {num(listen_many, '.3f')} | "
           f"{per_round('scale_sessions_listen', '.3f')} |",
           f"| replay peak RSS (VmHWM), {sessions:,} sessions (MiB) | {num(med('scale_sessions_hwm'), ',.0f')} | "
           f"{per_round('scale_sessions_hwm', ',.0f')} |",
           ""]

    def yn(ok):
        return "-" if ok is None else ("yes" if ok else "no")

    targets = [
        (f"replay of one {size_label} session / proxy relaying it live (MB/s)", f">= {RATIO_TARGET:.1f}",
         num(ratio, ".2f"), yn(None if ratio is None else ratio >= RATIO_TARGET)),
        (f"{size_label} replayed byte-exact", "yes", ("yes" if all(checked) else "no") if checked else "-",
         yn(None if not checked else all(checked))),
        (f"`tapedeck replay` of {sessions:,} sessions listening after", f"< {LISTEN_TARGET:g} s",
         num(listen_many, ".3f", " s"), yn(None if listen_many is None else listen_many < LISTEN_TARGET)),
    ]
    out += ["#### Targets\n",
            "\n".join(["| target | wanted | measured | met |", "|---|---|---|:---:|"] +
                      [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in targets]) + "\n",
            f"Medians over {len(ctx.record.get('scale_sessions_listen', {})) or '-'} round(s).\n"]
    return "\n".join(out)
