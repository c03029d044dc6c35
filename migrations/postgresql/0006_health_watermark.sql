-- Health aggregates are counted from the stored logs about once a second instead of in every
-- log commit (server/health_aggregate.py). last_log_id: every log with an id up to it is counted
-- in the health tables; a pass counts the ids after it and moves it in the same transaction.
-- Existing aggregates were written in the logs' own commits, so they cover every stored log.
CREATE TABLE health_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_log_id BIGINT NOT NULL
);
INSERT INTO health_watermark (id, last_log_id) SELECT 1, COALESCE(MAX(id), 0) FROM logs;
