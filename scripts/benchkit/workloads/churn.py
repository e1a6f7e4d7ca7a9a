"""churn: new connections per second through each relay (scripts/churn.c), and
the churn servers that the rss workload shares."""

import json
import shutil

from ..common import SCRIPT_DIR, BenchError, Skip, pause, warn
from ..net import free_port, wait_listening
from ..process import Proc, run_cmd
from ..workload import Ctx, Metric, Workload


def build_churn(ctx: Ctx) -> str:
    if ctx.churn_bin:
        return ctx.churn_bin
    src = SCRIPT_DIR / "churn.c"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise Skip("gcc not installed (needed to build scripts/churn.c)")
    out = ctx.tmp / "churn"
    cp = run_cmd([gcc, "-O2", "-pthread", "-o", str(out), str(src)], timeout=120, name="gcc")
    if cp.returncode != 0:
        raise BenchError(f"building churn.c failed: {cp.stderr.decode(errors='replace')[-500:]}")
    ctx.churn_bin = str(out)
    return ctx.churn_bin


def start_churn_server(ctx: Ctx, mode: str) -> int:
    key = f"churn-{mode}"
    if key in ctx.ports:
        return ctx.ports[key]
    binary = build_churn(ctx)
    port = free_port()
    srv = Proc(f"churn-server-{mode}-{port}", [binary, "server", str(port), mode, "7200"], ctx.tmp)
    ctx.shared[key] = srv
    wait_listening(port, srv, 10, f"churn server ({mode})")
    ctx.ports[key] = port
    return port


class Churn(Workload):
    key = "churn"
    title = "connection churn (scripts/churn.c)"

    def metrics(self, args):
        return [Metric("churn_cps", "churn new connections/s", "higher", ",.0f"),
                Metric("churn_p99", "churn p99 connection lifetime (ms)", "lower", ".3f")]

    def setup(self, ctx):
        mode = "close" if ctx.args.churn_close == "server" else "hold"
        return start_churn_server(ctx, mode)

    def run(self, ctx, relay, out):
        a = ctx.args

        def go():
            argv = [ctx.churn_bin, "client", str(relay.port), str(a.churn_threads),
                    f"{a.churn_seconds:g}", str(a.churn_max),
                    "eof" if a.churn_close == "server" else "close", str(a.churn_src_spread)]
            cp = run_cmd(argv, timeout=a.churn_seconds + 60, name="churn client")
            if cp.returncode != 0:
                raise BenchError(f"churn client rc={cp.returncode}: "
                                 f"{cp.stderr.decode(errors='replace')[-300:]}")
            res = json.loads(cp.stdout.decode())
            errs = res["err_connect"] + res["err_io"] + res["err_addrnotavail"]
            if errs:
                warn(f"{relay.spec.name}: churn had {errs} failed connections "
                     f"(connect={res['err_connect']} io={res['err_io']} "
                     f"addrnotavail={res['err_addrnotavail']}) of {res['conns'] + errs}")
            if res["conns"] == 0:
                raise BenchError("no connection completed")
            if errs > 0.01 * (res["conns"] + errs):
                raise BenchError(f"more than 1% of connections failed ({errs})")
            return {"churn_cps": res["cps"], "churn_p99": res["p99_ms"]}

        self.step(relay, out, ["churn_cps", "churn_p99"], go)
        # Let the TIME_WAIT sockets from this run drain a little.
        pause(1.0)
