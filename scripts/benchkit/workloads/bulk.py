"""bulk: iperf3 throughput through each relay, 1 and 8 streams, both directions."""

import json
import subprocess
import time

from ..common import LOOPBACK, BenchError, pause, require_tools
from ..net import free_port, wait_listening
from ..process import Proc, run_cmd
from ..sysinfo import read_status_kib, thread_cpu, thread_ticks
from ..tapes import check_disk
from ..workload import Metric, Workload


class Bulk(Workload):
    key = "bulk"
    title = "bulk throughput (iperf3)"
    CASES = [(1, False), (1, True), (8, False), (8, True)]
    DRY_RUN_CASES = [(1, False), (8, True)]

    @classmethod
    def cases(cls, args):
        return cls.DRY_RUN_CASES if getattr(args, "dry_run", False) else cls.CASES

    @staticmethod
    def mkey(streams, reverse):
        return f"bulk_p{streams}_{'down' if reverse else 'up'}"

    def metrics(self, args):
        out = []
        for streams, reverse in self.cases(args):
            d = "server->client" if reverse else "client->server"
            s = "stream" if streams == 1 else "streams"
            out.append(Metric(self.mkey(streams, reverse),
                              f"bulk {streams} {s} {d} (Gbit/s)", "higher", ".2f"))
        return out

    def setup(self, ctx):
        require_tools("iperf3")
        # A one-off iperf3 server is started on this port for every run.
        ctx.ports["iperf3"] = free_port()
        return ctx.ports["iperf3"]

    def one(self, ctx, relay, streams, reverse):
        up = ctx.ports["iperf3"]
        recording = relay.spec.tape is not None
        dur, omit = ctx.args.duration, 0
        if recording:
            # Shorter, to bound the tape; the first second (the memory budget
            # filling up) is left out of the result.
            dur, omit = min(dur, ctx.args.record_duration), ctx.args.record_omit
            check_disk(ctx, 0.5e9 if ctx.dry_run else 4e9, "bulk")
        server = Proc(f"iperf3-server-{up}", ["iperf3", "-s", "-1", "-B", LOOPBACK, "-p", str(up)],
                      ctx.tmp)
        try:
            wait_listening(up, server, 10, "iperf3 server")
            argv = ["iperf3", "-c", LOOPBACK, "-p", str(relay.port), "-t", f"{dur:g}",
                    "-P", str(streams), "-J", "--connect-timeout", "5000"]
            if omit:
                argv += ["-O", str(omit)]
            if ctx.dry_run:
                # Exercise the path, not the machine: the suite's other tests run beside a dry run.
                argv += ["-b", f"{200 // streams}M"]  # per stream
            if reverse:
                argv.append("-R")
            if recording:
                idle_kib = read_status_kib(relay.proc.pid)["VmRSS"]
                ticks = thread_ticks(relay.proc.pid)
                t0 = time.monotonic()
            cp = run_cmd(argv, timeout=dur + omit + 40, name="iperf3 client")
            try:
                data = json.loads(cp.stdout.decode(errors="replace"))
            except json.JSONDecodeError as exc:
                raise BenchError(f"iperf3 output is not JSON (rc={cp.returncode}): "
                                 f"{cp.stderr.decode(errors='replace')[-300:]}") from exc
            if data.get("error"):
                raise BenchError(f"iperf3: {data['error']}")
            bps = data["end"]["sum_received"]["bits_per_second"]
            if not bps or bps <= 0:
                raise BenchError("iperf3 reported no data received")
            if recording:
                key = self.mkey(streams, reverse)
                cpu = thread_cpu(relay.proc.pid, ticks, time.monotonic() - t0)
                st = read_status_kib(relay.proc.pid)
                ctx.rec(f"rec_{key}_writer_cpu", cpu["writer"])
                ctx.rec(f"rec_{key}_loops_cpu", cpu["loops"])
                ctx.rec(f"rec_{key}_idle_rss", idle_kib / 1024)
                ctx.rec(f"rec_{key}_peak_rss", st["VmHWM"] / 1024)
                relay.sent = int(data["end"]["sum_received"].get("bytes") or 0)
            return {self.mkey(streams, reverse): bps / 1e9}
        finally:
            try:
                server.p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            server.stop(grace=2)

    def run(self, ctx, relay, out):
        recording = relay.spec.tape is not None
        for i, (streams, reverse) in enumerate(self.cases(ctx.args)):
            key = self.mkey(streams, reverse)
            if recording and i > 0:
                relay.start()  # a fresh recorder and tape for every case
            relay.sent = None
            self.step(relay, out, [key], lambda s=streams, r=reverse: self.one(ctx, relay, s, r))
            if recording:
                if isinstance(out.get(key), float):
                    self.finish_tape(ctx, relay, key, relay.sent)
                else:
                    relay.stop()
            pause(0.3)
