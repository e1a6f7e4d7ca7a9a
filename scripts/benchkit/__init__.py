"""The benchmark harness behind scripts/bench: Tapedeck measured against real
peers (a direct connection, socat, HAProxy, redis-server, iperf3, nginx, dnsmasq, MariaDB) on loopback.

Where things are:

  cli.py          options, the rounds, the report written to stdout / --output
  workload.py     Workload (the base class), Ctx (the run's state), Metric
  workloads/      one module per workload: bulk, rr, churn, rss, record,
                  replay, replay_scale, inspect_sessions, run_command, rules,
                  tls, udp, dns, mysql, grpc, faults, web
  contestants.py  the relays compared (ContestantSpec) and a running one (Relay)
  process.py      child processes: started to die with the harness, stopped
                  by their own PIDs, commands run with a time limit
  net.py          free ports, waiting for a listener or a `listening` line
  sysinfo.py      memory and CPU from /proc, facts about the machine
  tapes.py        measuring a recorded tape; making tapes of a given shape
  microbench.py   the Benchmarks package's `tapedeck-microbench` commands
  report.py       tables, the environment header, the method notes
  download_server.py  the simple upstream of the replay-scale and faults
                  workloads (a download per connection)
"""
