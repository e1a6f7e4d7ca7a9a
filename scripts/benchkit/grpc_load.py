#!/usr/bin/env python3
"""gRPC load generator for the `grpc` benchmark workload: unary calls to
fixtures/servers/grpc_echo.py's `tapedeck.Echo/Say`, with grpcio's default
channel options (bandwidth probes on), each call with a deadline.

Usage: grpc_load.py PORT SECONDS PROCESSES THREADS MESSAGES
       grpc_load.py PORT once MESSAGES

PROCESSES processes, each with one channel (one HTTP/2 connection) and THREADS
threads making blocking calls back to back for SECONDS, going round MESSAGES
distinct requests (b"bench N"). Every answer must be b"said:" + the request.
Prints one JSON line: calls, calls_per_s, errors, wrong, p50_us, p99_us.
`once` makes each of the MESSAGES calls once, in order, on one channel (what a
recording needs) and prints the same line.
"""

import json
import multiprocessing
import sys
import threading
import time

import grpc

DEADLINE = 10.0


def identity(value):
    return value


def request(index: int) -> bytes:
    return b"bench %d" % index


def worker(port: int, seconds: float, threads: int, messages: int, offset: int, out) -> None:
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    say = channel.unary_unary("/tapedeck.Echo/Say", request_serializer=identity, response_deserializer=identity)
    grpc.channel_ready_future(channel).result(timeout=10)
    lock = threading.Lock()
    totals = {"calls": 0, "errors": 0, "wrong": 0, "latencies": []}
    start = time.monotonic()
    stop = start + seconds

    def run(thread: int) -> None:
        calls = errors = wrong = 0
        latencies = []
        index = offset + thread
        while True:
            now = time.monotonic()
            if now >= stop:
                break
            body = request(index % messages)
            index += threads
            try:
                answer = say(body, timeout=DEADLINE)
                if answer != b"said:" + body:
                    wrong += 1
            except grpc.RpcError:
                errors += 1
            calls += 1
            if calls % 16 == 0:
                latencies.append(time.monotonic() - now)
        with lock:
            totals["calls"] += calls
            totals["errors"] += errors
            totals["wrong"] += wrong
            totals["latencies"] += latencies

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + DEADLINE + 5)
    totals["elapsed"] = time.monotonic() - start
    channel.close()
    out.put(totals)


def summary(parts, elapsed: float) -> dict:
    latencies = sorted(l for p in parts for l in p["latencies"])
    calls = sum(p["calls"] for p in parts)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e6 if latencies else 0.0

    return {"calls": calls, "calls_per_s": calls / elapsed if elapsed > 0 else 0.0,
            "errors": sum(p["errors"] for p in parts), "wrong": sum(p["wrong"] for p in parts),
            "p50_us": pct(0.5), "p99_us": pct(0.99)}


def once(port: int, messages: int) -> dict:
    channel = grpc.insecure_channel("127.0.0.1:%d" % port)
    say = channel.unary_unary("/tapedeck.Echo/Say", request_serializer=identity, response_deserializer=identity)
    part = {"calls": 0, "errors": 0, "wrong": 0, "latencies": []}
    start = time.monotonic()
    for index in range(messages):
        began = time.monotonic()
        try:
            if say(request(index), timeout=DEADLINE) != b"said:" + request(index):
                part["wrong"] += 1
        except grpc.RpcError:
            part["errors"] += 1
        part["calls"] += 1
        part["latencies"].append(time.monotonic() - began)
    channel.close()
    return summary([part], time.monotonic() - start)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[2] == "once":
        print(json.dumps(once(int(sys.argv[1]), int(sys.argv[3]))))
        return 0
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    processes, threads, messages = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    # Each process its own grpcio: forked after grpcio started threads it would hang.
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    pool = [context.Process(target=worker, args=(port, seconds, threads, messages, p * threads, out))
            for p in range(processes)]
    for process in pool:
        process.start()
    parts = [out.get(timeout=seconds + 60) for _ in pool]
    for process in pool:
        process.join(10)
    print(json.dumps(summary(parts, max(p["elapsed"] for p in parts))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
