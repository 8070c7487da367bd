-- Reverts revision 0003.
DROP VIEW pgqueue.job_durations;
DROP VIEW pgqueue.throughput_per_minute;
DROP VIEW pgqueue.failed_jobs;
DROP VIEW pgqueue.queue_stats;
DROP INDEX pgqueue.jobs_finished_idx;
