-- FTS5 merges its index segments incrementally as commits add them: by default once 4 segments
-- of a level exist, so each row's index data is rewritten once per level of 4x size. At 16 it
-- is rewritten about half as often: the full-text part of an insert measured 1.55-1.59 us a
-- row instead of 1.94-1.99 (300,000 loghub rows in commits of 2,500, as the writer makes them;
-- docs/benchmarks.md, "SQLite: fewer full-text merges"). Queries read at most 15 segments a
-- level instead of 3 (the keyword query's p95 stays far under its target, same page).
INSERT INTO logs_fts (logs_fts, rank) VALUES ('automerge', 16);
