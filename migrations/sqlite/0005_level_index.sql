-- Index by level only the levels worth finding quickly over long ranges (WARNING and above,
-- typically a tenth of the rows): the full (app_id, level, ts) index cost a quarter of SQLite's
-- ingest throughput (measured: docs/benchmarks.md). INFO and DEBUG filters are served by
-- logs_app_ts, being most of the rows. Queries spell out `level >= 30` so planners pick it.
DROP INDEX logs_app_level_ts;
CREATE INDEX logs_app_problems ON logs (app_id, level, ts) WHERE level >= 30;
