"""web: how fast the web inspector (`tapedeck web`) shows a large tape.

Headless Chromium, driven through Selenium, loads the inspector's pages and
reads the page's own performance marks (docs/web.md): the time from
navigation start to the first render of the session table of tapes of 1,000
and 100,000 sessions (`/`, mark tapedeck:sessions-rendered), and of the
ladder of one session of 10,000 events (`/sessions/ID`, mark
tapedeck:session-rendered). For context, the time the server takes to answer
the API requests behind them (/api/sessions, /api/sessions/ID/events).

The tapes are made once per invocation (tapes.py: a recorded seed session,
then SQLite) and kept across rounds. The workload is skipped, with a note,
where Chromium, chromedriver or Python's selenium is not installed.
"""

import json
import math
import os
import re
import shutil
import signal
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..common import FAIL, LOOPBACK, BenchError, Skip, fail, log, warn
from ..process import Proc, process_tree, run_cmd
from ..report import rec_median
from ..sysinfo import tool_version
from ..tapes import (CLIENT_TO_UPSTREAM, DATA, INSERT_EVENT, UPSTREAM_TO_CLIENT, seed_session, add_sessions,
                     record_seed_tape)
from ..workload import Ctx, Workload

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TARGET_MS = 1000.0
MARK_SESSIONS = "tapedeck:sessions-rendered"
MARK_SESSION = "tapedeck:session-rendered"
WEB_LINE_RE = re.compile(r"^web\s+http://(\S+):(\d+)/\s*$")
# Seconds a load may take to reach its mark; the page's first render is
# meant to take well under one.
MARK_WAIT = 30.0
DRY_RUN_MARK_WAIT = 10.0
API_REQUESTS, DRY_RUN_API_REQUESTS = 5, 1

# The two tapes: `small` has the long session, `large` only small ones.
SMALL, LARGE = "small", "large"

# Waits in the page for a performance mark, without polling from outside
# (which would take CPU from the renderer on a small machine): resolves with
# the mark's startTime (ms since navigation start) and what the page shows.
WAIT_FOR_MARK_JS = """
const [name, limit, rows] = arguments;
const done = arguments[arguments.length - 1];
const report = (entry) => done({
    ms: entry ? entry.startTime : null,
    ready: document.body ? (document.body.dataset.ready || null) : null,
    rows: document.querySelectorAll(rows).length,
});
const find = () => performance.getEntriesByName(name, "mark")[0];
if (find()) { report(find()); return; }
const observer = new PerformanceObserver(() => {
    if (find()) { observer.disconnect(); report(find()); }
});
observer.observe({entryTypes: ["mark"]});
setTimeout(() => { observer.disconnect(); report(find()); }, limit);
"""


# Chromium's own background work (updates, sync, translation, metrics), which a measurement does not want beside it.
QUIET_CHROMIUM = ("--disable-background-networking", "--disable-component-update", "--disable-default-apps",
                  "--disable-sync", "--mute-audio", "--metrics-recording-only",
                  "--disable-features=Translate,MediaRouter,OptimizationHints")


def browser_paths() -> Tuple[str, str]:
    """(Chromium, chromedriver); raises Skip when either, or selenium, is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise Skip("Python's selenium not installed (pip install selenium)") from None
    browser = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None]
    if missing:
        raise Skip(f"{', '.join(missing)} not installed")
    return browser, driver


def percentile(values: List[float], p: float) -> float:
    """Nearest-rank percentile: of 20 values, p95 is the 19th smallest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# ------------------------------------------------------------------ the tapes

def conversation(events: int) -> List[Tuple[int, bytes]]:
    """`events` data events of a Redis client and server, alternating: SET
    and GET commands, each followed by its reply."""
    out: List[Tuple[int, bytes]] = []
    for i in range(events):
        n = i // 4
        key, value = f"key:{n:06d}".encode(), f"value-{n:06d}".encode()
        if i % 4 == 0:
            payload = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value)
        elif i % 4 == 1:
            payload = b"+OK\r\n"
        elif i % 4 == 2:
            payload = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
        else:
            payload = b"$%d\r\n%s\r\n" % (len(value), value)
        out.append((CLIENT_TO_UPSTREAM if i % 2 == 0 else UPSTREAM_TO_CLIENT, payload))
    return out


def add_long_session(path: Path, events: int) -> int:
    """Add one session of `events` events to a seed tape: a Redis
    conversation (conversation()), 50 us apart, then the seed session's
    closing events. Returns the new session's id."""
    con = sqlite3.connect(str(path), timeout=10, isolation_level=None)
    try:
        seed, closing = seed_session(con)
        sid = con.execute("SELECT COALESCE(MAX(id), 0) FROM sessions").fetchone()[0] + 1
        data = conversation(events - len(closing))
        step = 50_000
        end = len(data) * step + (max(o for o, _, _ in closing) if closing else 0)
        sent = [sum(len(p) for d, p in data if d == side) for side in (CLIENT_TO_UPSTREAM, UPSTREAM_TO_CLIENT)]
        con.execute("PRAGMA synchronous = OFF")
        con.execute("BEGIN")
        con.execute(
            "INSERT INTO sessions(id, run_id, route_id, route, client_address, upstream_address, started_at, "
            "ended_at, duration_ns, outcome, client_bytes, upstream_bytes, event_count) "
            "VALUES (?, ?, ?, ?, '127.0.0.1:40000', ?, ?, ?, ?, 'closed', ?, ?, ?)",
            (sid, seed["run_id"], seed["route_id"], seed["route"], seed["upstream_address"],
             seed["started_at"] + sid * 1_000_000, seed["started_at"] + sid * 1_000_000 + end, end,
             sent[0], sent[1], len(data) + len(closing)))
        con.executemany(f"{INSERT_EVENT} VALUES (?, ?, ?, ?, ?, ?)",
                        [(sid, seq, (seq + 1) * step, direction, DATA, payload)
                         for seq, (direction, payload) in enumerate(data)])
        con.executemany(f"{INSERT_EVENT} VALUES (?, ?, ?, ?, ?, NULL)",
                        [(sid, len(data) + i, len(data) * step + offset, direction, kind)
                         for i, (offset, direction, kind) in enumerate(closing)])
        con.execute("COMMIT")
    finally:
        con.close()
    return sid


# ---------------------------------------------------------------- the browser

class Browser:
    """One headless Chromium (through chromedriver) for a round, with the
    HTTP cache off, so every load fetches the page's files as a first visit
    does."""

    def __init__(self, ctx: Ctx, browser: str, driver: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=ctx.tmp))
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-extensions", "--window-size=1280,900",
                    *QUIET_CHROMIUM, f"--user-data-dir={self.profile}"):
            options.add_argument(arg)
        # An explicit driver path keeps Selenium Manager from looking for (and downloading) one.
        service = Service(executable_path=driver, log_output=str(ctx.tmp / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})

    def load(self, url: str, mark: str, rows: str, wait: float) -> Tuple[float, int]:
        """Navigate to `url`: (ms from navigation start to `mark`, how many
        `rows` the page shows then). Raises when the mark does not come within
        `wait` seconds or the page shows no `rows`."""
        self.driver.set_script_timeout(wait + 10)
        self.driver.get(url)
        got = self.driver.execute_async_script(WAIT_FOR_MARK_JS, mark, int(wait * 1000), rows)
        if got["ms"] is None:
            raise BenchError(f"no performance mark {mark} within {wait:.0f}s of loading {url} "
                             f"(body data-ready={got['ready']!r}, {got['rows']} of `{rows}`)")
        if not got["rows"]:
            raise BenchError(f"{url}: {mark} after {got['ms']:.0f} ms, but the page shows no `{rows}`")
        return float(got["ms"]), int(got["rows"])

    def quit(self) -> None:
        """Stop Chromium and chromedriver; if the driver does not answer, stop
        chromedriver and the browser it started by their PIDs."""
        service = self.driver.service
        pids = process_tree(service.process.pid) if service.process is not None else []
        try:
            self.driver.quit()
        except Exception as exc:
            warn(f"web: stopping Chromium: {exc}")
            for pid in reversed(pids):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.profile, ignore_errors=True)


# ----------------------------------------------------------------- the server

def start_web(ctx: Ctx, tape: Path, label: str, workdir: Path) -> Tuple[Proc, str, float]:
    """Start `tapedeck web TAPE --listen 127.0.0.1:0 --no-open`: (process,
    base URL, seconds until it printed its `web URL` line)."""
    t0 = time.monotonic()
    proc = Proc(label, [ctx.tapedeck, "web", str(tape), "--listen", f"{LOOPBACK}:0", "--no-open"], workdir)
    try:
        for _ in range(100_000):
            text = proc.stdout_text()
            for line in text.splitlines()[:text.count("\n")]:
                m = WEB_LINE_RE.match(line)
                if m:
                    if m.group(1) != LOOPBACK:
                        raise BenchError(f"{label}: serving on {m.group(1)}, expected {LOOPBACK}")
                    return proc, f"http://{LOOPBACK}:{m.group(2)}", time.monotonic() - t0
            if not proc.alive():
                raise BenchError(f"{label} exited (rc={proc.p.returncode}) before printing its web line: "
                                 f"{proc.stderr_tail(5)}")
            if time.monotonic() - t0 > 120:
                break
            time.sleep(0.01)
        raise BenchError(f"{label}: no 'web http://...' line on stdout within 120s")
    except BaseException:
        proc.stop(grace=10)
        raise


def get_json(url: str) -> Tuple[dict, float]:
    """(answer, ms) of one GET."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as reply:
        body = reply.read()
    ms = (time.perf_counter() - t0) * 1000
    return json.loads(body), ms


def api_time(url: str, requests: int, check) -> float:
    """Median ms of `requests` GETs of `url`, after one not counted; `check`
    is called with the first answer and raises if it is wrong."""
    answer, _ = get_json(url)
    check(answer)
    return statistics.median(get_json(url)[1] for _ in range(requests))


# ------------------------------------------------------------------ the workload

class Web(Workload):
    key = "web"
    title = "web inspector"
    per_contestant = False
    SESSIONS = (1_000, 100_000)
    EVENTS = 10_000
    DRY_RUN_SESSIONS = (100, 1_000)
    DRY_RUN_EVENTS = 500

    def __init__(self):
        self.paths: Optional[Tuple[str, str]] = None
        self.dir: Optional[Path] = None
        self.tapes: Dict[str, Path] = {}
        self.long_session = 0
        # Every counted load of every round, per case: ms to the mark.
        self.samples: Dict[str, List[float]] = {}
        # Per case: rows or events the page showed at its mark (the last load's).
        self.shown: Dict[str, int] = {}

    def metrics(self, args):
        return []

    def sizes(self, ctx: Ctx) -> Tuple[int, int, int]:
        """(sessions of the small tape, of the large tape, events of the long session)."""
        if ctx.dry_run:
            return (*self.DRY_RUN_SESSIONS, self.DRY_RUN_EVENTS)
        return (*self.SESSIONS, self.EVENTS)

    def cases(self) -> List[Tuple[str, str, str, str, str]]:
        """The pages measured: (key, tape, path, mark, what the page must show)."""
        return [
            (f"sessions_{SMALL}", SMALL, "/", MARK_SESSIONS, "table#sessions tbody tr[data-session-id]"),
            (f"sessions_{LARGE}", LARGE, "/", MARK_SESSIONS, "table#sessions tbody tr[data-session-id]"),
            ("ladder", SMALL, f"/sessions/{self.long_session}", MARK_SESSION, "#ladder .event[data-seq]"),
        ]

    def setup(self, ctx):
        self.paths = browser_paths()
        cp = run_cmd([ctx.tapedeck, "web", "--help"], timeout=30, name="tapedeck web --help")
        if cp.returncode != 0:
            raise BenchError(f"`tapedeck web --help` exited with {cp.returncode}: this tapedeck has no web inspector")
        return 0

    def environment(self, ctx, names):
        browser = self.paths[0] if self.paths else "chromium"
        try:
            import selenium
            version = selenium.__version__
        except ImportError:
            version = "?"
        warm = "" if ctx.dry_run else " after one not counted"
        return [f"- web: `{tool_version([browser, '--version'])}` headless through chromedriver, selenium "
                f"`{version}`; {self.loads(ctx)} load(s) per page and round{warm}, HTTP cache off"]

    def loads(self, ctx: Ctx) -> int:
        return ctx.args.web_loads

    def teardown(self, ctx):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir, self.tapes = None, {}

    def make_tapes(self, ctx: Ctx) -> None:
        if self.tapes:
            return
        small, large, events = self.sizes(ctx)
        self.dir = Path(tempfile.mkdtemp(prefix="web-", dir=ctx.tmp))
        t0 = time.monotonic()
        for which, sessions in ((SMALL, small), (LARGE, large)):
            tape = self.dir / f"{which}.tape"
            record_seed_tape(ctx.tapedeck, tape, self.dir)
            if which == SMALL:
                # The long session is the small tape's last one, so it has `sessions` in all.
                add_sessions(tape, sessions - 2)
                self.long_session = add_long_session(tape, events)
            else:
                add_sessions(tape, sessions - 1)
            self.tapes[which] = tape
        log(f"  web: tapes of {small:,} sessions (session {self.long_session} of {events:,} events) and "
            f"{large:,} sessions made in {time.monotonic() - t0:.1f}s")

    def measure_api(self, ctx: Ctx, which: str, base: str) -> None:
        small, large, events = self.sizes(ctx)
        sessions = small if which == SMALL else large
        requests = DRY_RUN_API_REQUESTS if ctx.dry_run else API_REQUESTS

        def check_sessions(answer):
            if answer.get("total") != sessions or not answer.get("sessions"):
                raise BenchError(f"/api/sessions of the {sessions:,}-session tape: total {answer.get('total')}, "
                                 f"{len(answer.get('sessions') or [])} on the page")

        def check_events(answer):
            if answer.get("total") != events or not answer.get("events"):
                raise BenchError(f"/api/sessions/{self.long_session}/events: total {answer.get('total')}, "
                                 f"expected {events}")

        ctx.rec(f"web_api_sessions_{which}_ms", api_time(f"{base}/api/sessions", requests, check_sessions))
        if which == SMALL:
            ctx.rec("web_api_events_ms",
                    api_time(f"{base}/api/sessions/{self.long_session}/events", requests, check_events))

    def measure_page(self, ctx: Ctx, browser: Browser, base: str, case) -> None:
        key, _, path, mark, rows = case
        wait = DRY_RUN_MARK_WAIT if ctx.dry_run else MARK_WAIT
        try:
            if not ctx.dry_run:
                browser.load(base + path, mark, rows, wait)  # warm-up, not counted
            loads = [browser.load(base + path, mark, rows, wait) for _ in range(self.loads(ctx))]
        except Exception as exc:
            fail(f"web {key}: {exc}")
            ctx.rec(f"web_{key}_ms", FAIL)
            return
        got = [ms for ms, _ in loads]
        self.shown[key] = loads[-1][1]
        self.samples.setdefault(key, []).extend(got)
        ctx.rec(f"web_{key}_ms", statistics.median(got))
        ctx.rec(f"web_{key}_max_ms", max(got))
        log(f"  web {key:15s} {path:14s} median {statistics.median(got):6.0f} ms, max {max(got):6.0f} ms "
            f"({len(got)} loads; {loads[-1][1]:,} drawn at the mark)")

    def serve(self, ctx: Ctx, browser: Browser, which: str, cases) -> None:
        """Start the server on one tape, time its API, load its pages, stop it."""
        proc, base, started = start_web(ctx, self.tapes[which], f"tapedeck-web-{which}-r{ctx.round + 1}", self.dir)
        try:
            ctx.rec(f"web_start_{which}_s", started)
            try:
                self.measure_api(ctx, which, base)
            except Exception as exc:
                fail(f"web API on the {which} tape: {exc}")
            for case in cases if browser is not None else []:
                self.measure_page(ctx, browser, base, case)
        finally:
            rc = proc.stop(grace=10)
        if rc != 0:
            raise BenchError(f"tapedeck web on the {which} tape exited with {rc} after SIGTERM: "
                             f"{proc.stderr_tail(5)}")

    def run_round(self, ctx):
        try:
            self.make_tapes(ctx)
        except Exception as exc:
            fail(f"web: making the tapes failed: {exc}")
            return
        browser = None
        if ctx.dry_run:
            # A dry run checks the harness: the tapes, the server, its API. The page itself is checked in a real
            # browser by the test suite's own browser test, which runs beside the dry run; a second Chromium
            # there would only load the two cores the suite shares.
            log("  web: dry run: pages not loaded in a browser")
        else:
            try:
                browser = Browser(ctx, *self.paths)
            except Exception as exc:
                fail(f"web: starting headless Chromium failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")
                return
        try:
            order = [SMALL, LARGE] if ctx.round % 2 == 0 else [LARGE, SMALL]
            for which in order:
                try:
                    self.serve(ctx, browser, which, [c for c in self.cases() if c[1] == which])
                except Exception as exc:
                    fail(f"web on the {which} tape: {exc}")
        finally:
            if browser is not None:
                browser.quit()

    # --- the report

    def section(self, ctx, names, results, keys):
        return web_section(ctx, self)

    method_md = """\
- web: two tapes, made once per invocation as for replay-scale (a recorded seed session,
  then `sqlite3`): 1,000 sessions, the last of them one Redis conversation of 10,000
  events (SET and GET commands and their replies, alternating, 50 us apart), and 100,000
  small sessions. Each round starts `tapedeck web TAPE --listen 127.0.0.1:0 --no-open`
  on each tape (stopped with SIGTERM: exit 0 expected), times `/api/sessions` and the
  long session's `/api/sessions/ID/events` with urllib (median of 5 after one), then
  loads `/` and `/sessions/ID` in headless Chromium (Selenium, chromedriver, HTTP cache
  off) once not counted and 20 times counted (`--web-loads`). A load's time is the
  startTime of the page's performance mark (`tapedeck:sessions-rendered`,
  `tapedeck:session-rendered`): ms from navigation start to the first render; the page
  must then show rows or events.
"""


def web_section(ctx: Ctx, web: Web) -> str:
    small, large, events = web.sizes(ctx)
    labels = {f"sessions_{SMALL}": f"session table, {small:,} sessions (`/`)",
              f"sessions_{LARGE}": f"session table, {large:,} sessions (`/`)",
              "ladder": f"ladder of one session of {events:,} events (`/sessions/ID`)"}

    def num(v, spec=",.0f"):
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    def med_ms(key):
        return num(rec_median(ctx, key)[0], ".1f")

    out = ["### Web inspector (`tapedeck web`)\n",
           "Headless Chromium, HTTP cache off; ms from navigation start to the page's first-render mark, "
           "over every counted load of every round.\n",
           "| page | drawn at the mark | loads | median (ms) | p95 (ms) | max (ms) | target | met |",
           "|---|---:|---:|---:|---:|---:|---|:---:|"]
    for key, label in labels.items():
        got = web.samples.get(key, [])
        if not got:
            verdict = "not loaded (dry run)" if ctx.dry_run else "fail"
            out.append(f"| {label} | - | 0 | {verdict} | - | - | < {TARGET_MS:,.0f} ms | {'-' if ctx.dry_run else 'no'} |")
            continue
        p95 = percentile(got, 95)
        out.append(f"| {label} | {num(web.shown.get(key))} | {len(got)} | {num(statistics.median(got))} | "
                   f"{num(p95)} | {num(max(got))} | < {TARGET_MS:,.0f} ms | {'yes' if p95 < TARGET_MS else 'no'} |")
    out += ["", "| server | median |", "|---|---:|",
            f"| `tapedeck web`, {small:,} sessions: start until serving (s) | "
            f"{num(rec_median(ctx, f'web_start_{SMALL}_s')[0], '.3f')} |",
            f"| `tapedeck web`, {large:,} sessions: start until serving (s) | "
            f"{num(rec_median(ctx, f'web_start_{LARGE}_s')[0], '.3f')} |",
            f"| `/api/sessions`, {small:,} sessions (ms) | {med_ms(f'web_api_sessions_{SMALL}_ms')} |",
            f"| `/api/sessions`, {large:,} sessions (ms) | {med_ms(f'web_api_sessions_{LARGE}_ms')} |",
            f"| `/api/sessions/ID/events`, {events:,} events, first page (ms) | "
            f"{med_ms('web_api_events_ms')} |",
            "", f"Target met: p95 under {TARGET_MS:,.0f} ms. Rounds: "
            f"{len(ctx.record.get(f'web_start_{SMALL}_s', {})) or '-'}.\n"]
    return "\n".join(out)
