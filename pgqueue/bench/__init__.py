"""``pgqueue bench``: how fast pgqueue runs on this machine, each workload on a fresh database.

Workloads (the names the peer comparison in ``benchmarks/`` uses too):

- ``single_enqueue``: one ``await queue.enqueue()`` after another, jobs/s.
- ``batch_enqueue``: ``enqueue_batch`` of 1,000 jobs a call, jobs/s.
- ``process``: N no-op jobs enqueued first, then ``pgqueue work`` processes started: jobs/s from
  their start to the last completion, checked by counting completed rows; peak RSS per worker.
- ``latency``: an idle worker; from the enqueue's commit to the handler's first line, in ms.

Two more on request, on a table millions of rows deep:

- ``process_1_worker_<N>_finished`` (``--finished-rows N``): ``process`` with one worker process
  after N completed jobs were put straight into the table (untimed; ``fill_seconds``).
- ``latency_during_prune`` (``--prune-rows N``): a worker busy with jobs enqueued at 500/s;
  their enqueue-to-start latency before and while ``Queue.prune`` deletes N old completed jobs.
- ``backlog_empty`` and ``backlog_<scheduled|paused>_<N>`` (``--scheduled-rows N``,
  ``--paused-rows N``): one worker's throughput, then its wake-up p50/p99 and database CPU per
  job for a stream of BACKLOG_STREAM_RATE jobs/s, with N jobs scheduled for tomorrow or N due
  jobs in a paused queue it serves, and as ratios of the same on an empty table.
"""

STREAM_RATE = 500  # jobs enqueued per second, before and during the prune
BACKLOG_STREAM_RATE = 20  # jobs enqueued per second to an otherwise idle worker
