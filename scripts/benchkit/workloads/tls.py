"""tls: HTTPS through `tapedeck proxy --tls intercept` and through HAProxy
terminating and re-originating TLS, in front of the same nginx (wrk)."""

import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..common import FAIL, LOOPBACK, NA, BenchError, fail, log, pause, require_tools, skip
from ..net import free_port, wait_listening
from ..process import Proc, run_bounded, run_cmd, run_watched
from ..report import rec_median
from ..sysinfo import process_cpu_seconds, tool_version
from ..workload import Ctx, Workload
from .replay import start_tapedeck

HOST = "localhost"  # the name clients ask for (SNI) and the test leaf is made for
LEGS = ("direct", "haproxy", "tapedeck")
RELAYS = ("haproxy", "tapedeck")
CLIENTS = 50
SMALL_BODY = 100  # bytes of /small
TESTS = ("rps", "hs", "bulk")
TARGETS = {"rps": 1.0, "hs": 0.8, "bulk": 1.0}  # tapedeck / haproxy, at least
LABELS = {
    "rps": f"requests/s, {CLIENTS} keep-alive connections",
    "hs": f"handshakes/s, {CLIENTS} connections, `Connection: close`",
    "bulk": "bulk download, 1 connection (MB/s)",
}
CPU_LABELS = {
    "rps": "relay CPU per request (µs)",
    "hs": "relay CPU per handshake (µs)",
    "bulk": "relay CPU per MB (ms)",
}

# wrk prints its own summary; this line is the one the harness reads.
WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"duration_us": %d, "requests": %d, "bytes": %d, "connect": %d, '
    .. '"read": %d, "write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""

# Only the requests of the handshake test are logged: whether nginx resumed
# the session of each of them (`r`) or made a new one (`.`).
NGINX_CONF = """\
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
{user}
events {{ worker_connections 16384; }}
http {{
    map $http_connection $tls_bench_log {{ close 1; default 0; }}
    log_format tls_bench '$ssl_session_reused $ssl_protocol $ssl_cipher';
    access_log {dir}/handshakes.log tls_bench if=$tls_bench_log;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name {host};
        ssl_certificate {dir}/leaf.pem;
        ssl_certificate_key {dir}/leaf.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        root {dir}/www;
    }}
}}
"""

# As the TCP contestant (`mode tcp`, default threading: as many threads as
# cores, like tapedeck's event loops), with TLS on both sides: the client's
# TLS ends here with a leaf of the test CA, and TLS is made anew to nginx,
# passing the client's SNI (as tapedeck does) without verifying nginx (as
# `--insecure-upstream`).
HAPROXY_TLS_CFG = """\
global
    maxconn {maxconn}

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend tls_in
    bind 127.0.0.1:{port} ssl crt {crt}
    default_backend tls_up

backend tls_up
    server up1 127.0.0.1:{upstream_port} ssl verify none sni ssl_fc_sni
"""


def tkey(leg: str, what: str) -> str:
    return f"tls_{leg}_{what}"


def make_certificates(d: Path) -> None:
    """A test CA and a leaf for localhost (ECDSA P-256, as tapedeck's leaves)
    signed by it, with openssl."""
    def openssl(*argv: str) -> None:
        cp = run_cmd(["openssl", *argv], timeout=60, name="openssl")
        if cp.returncode != 0:
            raise BenchError(f"openssl {argv[0]}: {cp.stderr.decode(errors='replace')[-300:]}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
            "-days", "2", "-subj", "/CN=Tapedeck bench test CA")
    openssl("req", *ec, "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"),
            "-subj", f"/CN={HOST}")
    (d / "leaf.ext").write_text(f"subjectAltName=DNS:{HOST},IP:{LOOPBACK}\nbasicConstraints=CA:FALSE\n"
                                "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.pem"), "-CAkey",
            str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "leaf.pem"), "-days", "2",
            "-extfile", str(d / "leaf.ext"))
    # HAProxy takes the chain and the key in one file.
    (d / "haproxy.pem").write_text((d / "leaf.pem").read_text() + (d / "leaf.key").read_text())


class Tls(Workload):
    """HTTPS through `tapedeck proxy --tls intercept --insecure-upstream` and
    through HAProxy (`mode tcp`, `bind ... ssl crt`, `server ... ssl verify
    none`), both in front of one nginx serving HTTPS with a leaf of a test CA,
    and straight at nginx (`direct`); the legs run one after the other in an
    order that rotates from round to round, each relay started fresh. Per leg:
    wrk requests/s over keep-alive connections, wrk handshakes/s with
    `Connection: close` (a new connection, so a new TLS handshake on both sides
    of a relay, for every request), and the MB/s of a large body over one
    connection."""
    key = "tls"
    title = "tls"
    per_contestant = False

    def __init__(self):
        self.dir: Optional[Path] = None
        self.port = 0
        self.legs: List[str] = []

    def metrics(self, args):
        return []

    @property
    def method_md(self):
        return TLS_METHOD_MD

    def section(self, ctx, names, results, keys):
        return tls_section(ctx, self.legs)

    def environment(self, ctx, names):
        a = ctx.args
        versions = [("nginx", tool_version(["nginx", "-v"], lambda s: s.split("/", 1)[-1])),
                    ("wrk", wrk_version()),
                    ("openssl", tool_version(["openssl", "version"], lambda s: " ".join(s.split()[:2])))]
        return [f"- tls: wrk {a.tls_duration:g} s per test, {CLIENTS} connections (bulk: 1 connection, "
                f"a {a.tls_bulk_mib} MiB body); " + "; ".join(f"{k} `{v}`" for k, v in versions)]

    # --- the shared upstream

    def setup(self, ctx):
        require_tools("nginx", "openssl", "wrk")
        wanted = LEGS
        if ctx.args.contestants is not None:
            named = {n.strip() for n in ctx.args.contestants.split(",")}
            wanted = tuple(leg for leg in LEGS if leg in named)
        self.legs = []
        for leg in wanted:
            if leg == "haproxy" and not shutil.which("haproxy"):
                skip("tls: contestant haproxy: haproxy not installed")
                continue
            self.legs.append(leg)
        if not self.legs:
            raise BenchError("no leg to run (name direct, haproxy or tapedeck in --contestants)")
        self.dir = Path(tempfile.mkdtemp(prefix="tls-", dir=ctx.tmp))
        d = self.dir
        make_certificates(d)
        (d / "www").mkdir()
        (d / "www" / "small").write_bytes(b"x" * SMALL_BODY)
        with open(d / "www" / "bulk", "wb") as f:
            f.truncate(self.bulk_bytes(ctx))  # zeros: TLS does not compress
        (d / "report.lua").write_text(WRK_SCRIPT)
        self.port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""  # else nginx warns that it cannot switch user
        (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, port=self.port, host=HOST, user=user))
        srv = Proc(f"nginx-tls-{self.port}",
                   ["nginx", "-e", str(d / "nginx-error.log"), "-p", str(d), "-c", str(d / "nginx.conf"),
                    "-g", "daemon off;"], ctx.tmp)
        ctx.shared["nginx-tls"] = srv
        wait_listening(self.port, srv, 15, "nginx")
        ctx.ports["nginx-tls"] = self.port
        probe(self.port, d / "ca.pem")
        return self.port

    def teardown(self, ctx):
        srv = ctx.shared.pop("nginx-tls", None)
        if srv is not None:
            srv.stop(grace=5)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @staticmethod
    def bulk_bytes(ctx) -> int:
        return ctx.args.tls_bulk_mib * 1024 * 1024

    # --- the relays

    def start(self, ctx, leg: str) -> Tuple[Optional[Proc], int, Path]:
        """Start the leg's relay: (its process, the port clients use, the CA
        clients trust)."""
        d = self.dir
        tag = f"{leg}-tls-r{ctx.round + 1}"
        if leg == "direct":
            return None, self.port, d / "ca.pem"
        if leg == "haproxy":
            port = free_port()
            cfg = d / f"haproxy-r{ctx.round + 1}.cfg"
            cfg.write_text(HAPROXY_TLS_CFG.format(maxconn=ctx.maxconn, port=port, crt=d / "haproxy.pem",
                                                  upstream_port=self.port))
            proc = Proc(tag, ["haproxy", "-f", str(cfg), "-db"], ctx.tmp)
            wait_listening(port, proc, 15, "haproxy")
            return proc, port, d / "ca.pem"
        ca_dir = Path(tempfile.mkdtemp(prefix=f"ca-{tag}-", dir=d))
        proc, port = start_tapedeck(
            ctx, tag, [ctx.tapedeck, "proxy", "--listen", f"{LOOPBACK}:0", "--upstream",
                       f"{LOOPBACK}:{self.port}", "--tls", "intercept", "--insecure-upstream",
                       "--ca-dir", str(ca_dir)])
        return proc, port, ca_dir / "ca-cert.pem"

    # --- the client

    def wrk(self, ctx, port: int, path: str, threads: int, conns: int, close: bool,
            watch: List[Proc]) -> Dict[str, float]:
        dur = ctx.args.tls_duration
        argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{dur:g}s", "--timeout", "30s",
                "-s", str(self.dir / "report.lua")]
        if close:
            argv += ["-H", "Connection: close"]
        argv.append(f"https://{HOST}:{port}{path}")
        cp, _ = run_watched(argv, dur + 60, "wrk", watch)
        out = cp.stdout.decode(errors="replace")
        line = next((l for l in out.splitlines() if l.startswith("WRKJSON ")), None)
        if cp.returncode != 0 or line is None:
            raise BenchError(f"wrk rc={cp.returncode}: {(cp.stderr.decode(errors='replace') or out)[-300:]}")
        res = json.loads(line[len("WRKJSON "):])
        errors = sum(res[k] for k in ("connect", "read", "write", "status", "timeout"))
        if res["requests"] == 0:
            raise BenchError(f"wrk completed no request: {res}")
        # With `Connection: close` a few reads fail at the end of the run, when
        # wrk stops in the middle of requests.
        if errors > max(conns, 0.01 * res["requests"]):
            raise BenchError(f"wrk: {errors} errors in {res['requests']} requests: {res}")
        return res

    def measure(self, ctx, leg: str, proc: Optional[Proc], port: int) -> Dict[str, float]:
        out: Dict[str, float] = {}
        watch = [ctx.shared["nginx-tls"]] + ([proc] if proc is not None else [])
        log_path = self.dir / "handshakes.log"
        for test in TESTS:
            before = process_cpu_seconds(proc.pid) if proc is not None else None
            logged = log_path.stat().st_size if log_path.exists() else 0
            if test == "rps":
                res = self.wrk(ctx, port, "/small", 2, CLIENTS, False, watch)
                units = res["requests"]
                value = units / (res["duration_us"] / 1e6)
            elif test == "hs":
                res = self.wrk(ctx, port, "/small", 2, CLIENTS, True, watch)
                units = res["requests"]
                value = units / (res["duration_us"] / 1e6)
            else:
                res = self.wrk(ctx, port, "/bulk", 1, 1, False, watch)
                units = res["bytes"] / 1e6
                value = units / (res["duration_us"] / 1e6)
                if res["bytes"] < self.bulk_bytes(ctx):
                    raise BenchError(f"bulk: {res['bytes']} bytes read, less than one body")
            out[test] = value
            after = process_cpu_seconds(proc.pid) if proc is not None else None
            if before is not None and after is not None and units:
                out[f"{test}_cpu"] = (after - before) / units * (1e3 if test == "bulk" else 1e6)
            if test == "hs":
                # What nginx saw of these connections: TLS sessions resumed or new.
                pause(1.0)  # nginx writes its log line when the request ends
                with open(log_path, "rb") as f:
                    f.seek(logged)
                    lines = f.read().decode(errors="replace").splitlines()
                if lines:
                    out["hs_upstream_resumed"] = sum(1 for l in lines if l.startswith("r ")) / len(lines)
                    out["hs_upstream_tls"] = statistics.mode(" ".join(l.split()[1:]) for l in lines)
                if len(lines) < 0.9 * res["requests"]:
                    raise BenchError(f"handshakes: nginx saw {len(lines)} requests of {res['requests']}")
            pause(0.5)
        return out

    def leg(self, ctx, leg: str) -> None:
        keys = list(TESTS) + [f"{t}_cpu" for t in TESTS]
        try:
            proc, port, ca = self.start(ctx, leg)
        except Exception as exc:
            fail(f"tls: {leg}: cannot start: {exc}")
            for k in keys:
                ctx.rec(tkey(leg, k), FAIL)
            return
        try:
            seen = probe(port, ca)
            for k, v in seen.items():
                ctx.rec(tkey(leg, k), v)
            out = self.measure(ctx, leg, proc, port)
            for k, v in out.items():
                ctx.rec(tkey(leg, k), v)
            log(f"  tls {leg:8s} {out['rps']:,.0f} req/s, {out['hs']:,.0f} handshakes/s, "
                f"{out['bulk']:,.0f} MB/s; client TLS {seen['client_tls']}, resumed: {seen['client_resumed']}; "
                f"upstream sessions resumed {out.get('hs_upstream_resumed', 0):.0%}")
        except Exception as exc:
            fail(f"tls: {leg}: {exc}")
            for k in keys:
                ctx.rec(tkey(leg, k), FAIL)
        finally:
            if proc is not None:
                rc = proc.stop(grace=10)
                if leg == "tapedeck" and rc != 0:
                    fail(f"tls: tapedeck proxy exited with {rc} after SIGTERM: {proc.stderr_tail(5)}")

    def run_round(self, ctx):
        shift = ctx.round % len(self.legs)
        for leg in self.legs[shift:] + self.legs[:shift]:
            self.leg(ctx, leg)
            pause(1.0)  # let the TIME_WAIT sockets of the handshake test drain a little


def wrk_version() -> str:
    """wrk prints its version with its usage, and exits 1."""
    try:
        cp = run_bounded(["wrk", "--version"], timeout=10)
        return (cp.stdout or cp.stderr).decode(errors="replace").split()[1]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def probe(port: int, ca: Path) -> Dict[str, str]:
    """Two HTTPS requests, verifying the server against `ca` for localhost:
    the first on a new session, the second offering the first's session. What
    TLS the client got, and whether the server resumed the session."""
    context = ssl.create_default_context(cafile=str(ca))
    session = None
    seen: Dict[str, str] = {}
    for attempt in range(2):
        with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=HOST, session=session) as s:
                s.sendall(f"GET /small HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                for _ in range(1000):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data.startswith(b"HTTP/1.1 200") or not data.endswith(b"x" * SMALL_BODY):
                    raise BenchError(f"unexpected answer on port {port}: {data[:80]!r}")
                if attempt == 0:
                    seen["client_tls"] = f"{s.version()} {s.cipher()[0]}"
                else:
                    seen["client_resumed"] = "yes" if s.session_reused else "no"
                session = s.session
    return seen


def tls_section(ctx: Ctx, legs: List[str]) -> Optional[str]:
    rounds = sorted({r for k, v in ctx.record.items() if k.startswith("tls_") for r in v})
    if not rounds:
        return None

    def vals(key):
        return ctx.record.get(key, {})

    def med(key):
        return rec_median(ctx, key)[0]

    def cell(key, spec):
        v, flag = rec_median(ctx, key)
        return (format(v, spec) + flag) if v is not None else (flag or "-")

    def per_round(key, spec):
        v = vals(key)
        return " / ".join(format(v[r], spec) if isinstance(v.get(r), (int, float)) else str(v.get(r, "-"))
                          for r in rounds) or "-"

    def ratio(test):
        a, b = med(tkey("tapedeck", test)), med(tkey("haproxy", test))
        return a / b if a is not None and b else None

    a = ctx.args
    out = ["### TLS (`tapedeck proxy --tls intercept`)\n",
           f"HTTPS from wrk through `tapedeck proxy --tls intercept --insecure-upstream` and through HAProxy "
           f"(`mode tcp`, `bind ... ssl crt`, `server ... ssl verify none sni ssl_fc_sni`, default threading), "
           f"both in front of the same nginx serving HTTPS, and straight at nginx (`direct`); the legs rotate "
           f"from round to round. wrk {a.tls_duration:g} s per test: `-t 2 -c {CLIENTS}` requests for a "
           f"{SMALL_BODY}-byte body over keep-alive connections; the same with `-H 'Connection: close'` (a new "
           f"connection, so a new TLS handshake on each side of a relay, for every request); `-t 1 -c 1` "
           f"downloads of a {a.tls_bulk_mib} MiB body (MB/s = 10^6 bytes read per second). Relay CPU: user + "
           f"system time of the relay process over the test, per unit.\n"]
    shown = [leg for leg in LEGS if leg in legs]
    both = "haproxy" in shown and "tapedeck" in shown
    head = ["measurement"] + shown + (["tapedeck/haproxy", "target", "met"] if both else [])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "|".join(["---:"] * (len(head) - 1)) + "|"]
    for test in TESTS:
        row = [LABELS[test]] + [cell(tkey(leg, test), ",.0f") for leg in shown]
        if both:
            r = ratio(test)
            row += [format(r, ".2f") if r is not None else "-", f">= {TARGETS[test]:.1f}",
                    "-" if r is None else ("yes" if r >= TARGETS[test] else "no")]
        lines.append("| " + " | ".join(row) + " |")
    for test in TESTS:
        spec = ".2f" if test == "bulk" else ",.0f"
        row = [CPU_LABELS[test]] + [NA if leg == "direct" else cell(tkey(leg, f"{test}_cpu"), spec)
                                    for leg in shown]
        if both:
            ours, theirs = med(tkey("tapedeck", f"{test}_cpu")), med(tkey("haproxy", f"{test}_cpu"))
            row += [format(ours / theirs, ".2f") if ours is not None and theirs else "-", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    row = ["handshake test: sessions nginx resumed (%)"] + [cell(tkey(leg, "hs_upstream_resumed"), ".0%")
                                                            for leg in shown]
    lines.append("| " + " | ".join(row + (["", "", ""] if both else [])) + " |")
    out.append("\n".join(lines) + "\n")

    per = ["| measurement | " + " | ".join(shown) + " |", "|---|" + "|".join(["---:"] * len(shown)) + "|"]
    for test in TESTS:
        per.append(f"| {LABELS[test]} | " + " | ".join(per_round(tkey(leg, test), ",.0f") for leg in shown) + " |")
    out += ["Per round, in round order:\n", "\n".join(per) + "\n"]

    notes = []
    for leg in shown:
        client = next((v for v in vals(tkey(leg, "client_tls")).values() if isinstance(v, str)), None)
        resumed = next((v for v in vals(tkey(leg, "client_resumed")).values() if isinstance(v, str)), None)
        upstream = next((v for v in vals(tkey(leg, "hs_upstream_tls")).values() if isinstance(v, str)), None)
        if client:
            note = f"`{leg}`: the client got {client}; a second connection offering the session: " \
                   f"{'resumed' if resumed == 'yes' else 'a full handshake'}"
            if upstream and leg != "direct":
                note += f"; nginx saw {upstream}"
            notes.append(note)
    if notes:
        out.append("TLS as seen by a Python client verifying the leg's CA (`direct` and `haproxy`: the test CA; "
                   "`tapedeck`: its `--ca-dir`'s `ca-cert.pem`), and by nginx in the handshake test: "
                   + "; ".join(notes) + ".\n")
    return "\n".join(out)


TLS_METHOD_MD = f"""\
- tls: in a temp dir, openssl makes a test CA and a leaf for `localhost` (ECDSA P-256, as
  tapedeck's leaves) signed by it; nginx (`worker_processes auto`, TLS 1.2 and 1.3, the leaf,
  `keepalive_requests` high enough that keep-alive connections last the test) serves a
  {SMALL_BODY}-byte file and a large one (`--tls-bulk-mib`, default 128 MiB, zeros: TLS does
  not compress). Legs: `direct` (wrk straight at nginx), HAProxy (`mode tcp`, `bind
  127.0.0.1:PORT ssl crt LEAF+KEY`, `server ... ssl verify none sni ssl_fc_sni`, default
  threading: one thread per core, so two here, as tapedeck runs one event loop per core; its
  session reuse toward nginx is left on, as by default) and `tapedeck proxy --listen
  127.0.0.1:0 --upstream 127.0.0.1:NGINX --tls intercept --insecure-upstream --ca-dir DIR` (a
  fresh CA in a fresh DIR every time). Every relay is started fresh for its leg; the legs rotate
  from round to round. Each leg first makes two requests with Python's `ssl`, verifying the
  leg's CA for `localhost` (the second offering the first's session, to see whether the leg
  resumes sessions), then runs wrk (`--timeout 30s`, `-s` a Lua `done` hook printing the summary
  as JSON) for `--tls-duration` seconds (default 10): `-t 2 -c {CLIENTS}
  https://localhost:PORT/small` (req/s = requests / duration), the same with `-H 'Connection:
  close'` (nginx closes each connection after its answer and wrk opens a new one: handshakes/s =
  requests / duration), and `-t 1 -c 1` on the large file (MB/s = bytes read / duration). wrk
  offers the previous session on every reconnect (it keeps it across `SSL_clear`), so the
  client's handshakes are resumptions wherever the server takes them; nginx logs
  `$ssl_session_reused` for each request of the handshake test, which shows the kind of the
  upstream handshakes (HAProxy reuses its session toward a server by default; tapedeck makes a
  full handshake every time). A run with more errors than max(connections, 1% of requests)
  does not count. Relay CPU is utime + stime of the relay process (`/proc/PID/stat`) over the
  test.
"""
