-- Nothing to do on PostgreSQL: this changes SQLite's FTS5 merging (sqlite/0009_fts_automerge.sql).
-- This file exists because both dialects keep the same migration versions (tests/server/test_migrate.py).
SELECT 1;
