"""rr: redis-benchmark request/response through each relay: -c 1 latency and
-c 50 requests/s."""

import csv
import io

from ..common import LOOPBACK, BenchError, pause, require_tools
from ..net import free_port, wait_listening
from ..process import Proc, run_cmd
from ..workload import Metric, Workload


class ReqResp(Workload):
    key = "rr"
    title = "request/response (redis-benchmark)"
    TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]

    def metrics(self, args):
        out = []
        for t in self.TESTS:
            out.append(Metric(f"rr_c1_{t}_avg", f"rr -c 1 {t} mean latency (ms)", "lower", ".3f"))
            out.append(Metric(f"rr_c1_{t}_p50", f"rr -c 1 {t} p50 latency (ms)", "lower", ".3f"))
            out.append(Metric(f"rr_c1_{t}_p99", f"rr -c 1 {t} p99 latency (ms)", "lower", ".3f"))
        for t in self.TESTS:
            out.append(Metric(f"rr_c50_{t}_rps", f"rr -c 50 {t} (req/s)", "higher", ",.0f"))
        return out

    def setup(self, ctx):
        require_tools("redis-server", "redis-benchmark")
        port = free_port()
        srv = Proc(f"redis-server-{port}",
                   ["redis-server", "--port", str(port), "--bind", LOOPBACK,
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--maxclients", "10000", "--logfile", ""], ctx.tmp)
        ctx.shared["redis"] = srv
        wait_listening(port, srv, 15, "redis-server")
        ctx.ports["redis"] = port
        return port

    def bench(self, relay, clients, n):
        argv = ["redis-benchmark", "-h", LOOPBACK, "-p", str(relay.port),
                "-t", "ping,set,get", "-c", str(clients), "-n", str(n), "--csv"]
        cp = run_cmd(argv, timeout=180, name="redis-benchmark")
        text = cp.stdout.decode(errors="replace")
        rows = {}
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("test"):
                rows[row["test"]] = row
        missing = [t for t in self.TESTS if t not in rows]
        if cp.returncode != 0 or missing:
            raise BenchError(f"redis-benchmark rc={cp.returncode}, missing {missing}: "
                             f"{(cp.stderr.decode(errors='replace') or text)[-300:]}")
        return rows

    def run(self, ctx, relay, out):
        a = ctx.args

        def c1():
            rows = self.bench(relay, 1, a.rr_n1)
            res = {}
            for t in self.TESTS:
                res[f"rr_c1_{t}_avg"] = float(rows[t]["avg_latency_ms"])
                res[f"rr_c1_{t}_p50"] = float(rows[t]["p50_latency_ms"])
                res[f"rr_c1_{t}_p99"] = float(rows[t]["p99_latency_ms"])
            return res

        def c50():
            rows = self.bench(relay, 50, a.rr_n50)
            return {f"rr_c50_{t}_rps": float(rows[t]["rps"]) for t in self.TESTS}

        self.step(relay, out, [m.key for m in self.metrics(a) if m.key.startswith("rr_c1_")], c1)
        pause(0.3)
        self.step(relay, out, [m.key for m in self.metrics(a) if m.key.startswith("rr_c50_")], c50)
        if relay.spec.tape is not None:
            if all(isinstance(v, float) for v in out.values()):
                self.finish_tape(ctx, relay, "rr")
            else:
                relay.stop()
