"""rss: each relay's memory while it holds N idle connections."""

import selectors
import socket
import time
from typing import List

from ..common import LOOPBACK, BenchError, log, pause
from ..sysinfo import memory_of
from ..workload import Metric, Workload
from .churn import start_churn_server


class Rss(Workload):
    key = "rss"
    title = "memory with idle connections"
    direct_applicable = False

    def metrics(self, args):
        n = args.rss_conns
        return [
            Metric("rss_idle", "RSS, relay idle (MiB)", "lower", ".1f"),
            Metric("rss_conns", f"RSS, {n} idle conns (MiB)", "lower", ".1f"),
            Metric("hwm_conns", f"peak RSS (VmHWM), {n} idle conns (MiB)", "lower", ".1f"),
            Metric("pss_conns", f"PSS, {n} idle conns (MiB)", "lower", ".1f"),
            Metric("rss_per_conn", "RSS per idle conn (KiB)", "lower", ".1f"),
            Metric("pss_per_conn", "PSS per idle conn (KiB)", "lower", ".1f"),
        ]

    def setup(self, ctx):
        return start_churn_server(ctx, "hold")

    def hold(self, relay, n):
        socks: List[socket.socket] = []
        try:
            deadline = time.monotonic() + 60
            for i in range(n):
                if time.monotonic() > deadline:
                    raise BenchError(f"connecting took over 60s ({i} of {n} open)")
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.settimeout(10)
                s.connect((LOOPBACK, relay.port))
                s.setblocking(False)
            # One PING per connection; a +PONG proves the upstream leg exists.
            for s in socks:
                s.send(b"PING\r\n")
            sel = selectors.DefaultSelector()
            got = {}
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
                got[s] = b""
            pending = len(socks)
            deadline = time.monotonic() + 60
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1.0):
                    s = key.fileobj
                    try:
                        data = s.recv(64)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise BenchError("a connection was closed by the relay")
                    got[s] += data
                    if got[s].endswith(b"+PONG\r\n"):
                        sel.unregister(s)
                        pending -= 1
            sel.close()
            if pending:
                raise BenchError(f"{pending} of {n} connections got no reply within 60s")
            pause(1.0)  # let the relay settle
            relay.check_alive()
            return memory_of(relay.pids())
        finally:
            for s in socks:
                s.close()

    def run(self, ctx, relay, out):
        n = ctx.args.rss_conns

        def go():
            pause(0.5)
            before = memory_of(relay.pids())
            after = self.hold(relay, n)
            log(f"  {relay.spec.name}: {after['procs']} process(es) while holding {n} conns")
            return {
                "rss_idle": before["rss"] / 1024,
                "rss_conns": after["rss"] / 1024,
                "hwm_conns": after["hwm"] / 1024,
                "pss_conns": after["pss"] / 1024,
                "rss_per_conn": (after["rss"] - before["rss"]) / n,
                "pss_per_conn": (after["pss"] - before["pss"]) / n,
            }

        self.step(relay, out, [m.key for m in self.metrics(ctx.args)], go)
        pause(0.5)
