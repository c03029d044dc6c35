-- Request records (attributes with a valid duration_ms, as the SDK's middleware sends) keep
-- their route key, duration and latency histogram bin in columns of their own, so the health
-- aggregator counts new logs with plain GROUP BYs (server/health_aggregate.py), no JSON.
-- NULL for every other record, and for the rows stored before (the aggregates count them).
ALTER TABLE logs ADD COLUMN route TEXT;
ALTER TABLE logs ADD COLUMN duration_us INTEGER;
ALTER TABLE logs ADD COLUMN duration_bin INTEGER;
