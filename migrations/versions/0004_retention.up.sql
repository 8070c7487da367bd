-- pgqueue revision 0004: autovacuum settings for a high-churn queue table.
-- Every job is inserted, updated two or three times and finally deleted by pruning, so dead row
-- versions pile up far faster than the default (20 % of the table) lets autovacuum notice; on a
-- table of millions of finished rows that means long stretches of bloat in the claimable index.
-- Vacuum after 1 % of the rows (or 1,000) changed, analyze after 2 %, and do not throttle it.
ALTER TABLE pgqueue.jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
