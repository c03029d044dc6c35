-- PostgreSQL only (its logs.words and word blocks: migrations/postgresql/0008_ascii_words.sql).
-- SQLite's keyword search is FTS5, which tokenises messages itself.
SELECT 1;
