"""The peer comparison: pgqueue against a raw asyncpg baseline, PgQueuer and Procrastinate.

``python -m benchmarks`` runs every system through the same workloads, each run on a fresh
database and in a process of its own, and writes a table, a JSON file and a chart; see
``benchmarks/README.md``. Nothing here is part of the pgqueue package.

Modules:

- ``__main__``: the command line.
- ``harness``: the driver: systems x workloads x repetitions, databases, child processes, deadlines.
- ``child``: one workload of one system, run in a child process the driver starts.
- ``worker``: the entry point of a peer's worker process.
- ``systems``: the systems, what each needs installed, and the workload names.
- ``peer``: what a system provides (protocols) and what a handler does (``StartLog``).
- ``workloads``: the workloads over any ``Peer`` (pgqueue uses ``pgqueue.bench.run`` instead).
- ``raw``, ``pgqueue_peer``, ``pgqueuer_peer``, ``procrastinate_peer``: one module per system.
- ``report``: medians and tables, the JSON file; ``chart``: the PNG.
"""
