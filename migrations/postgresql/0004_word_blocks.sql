-- Keyword search by word blocks (docs/storage.md): the per-row text[] words and their GIN
-- index cost more than half of a row's insert time. Now logs.words is plain text, the
-- message's distinct lower-cased words as ' w1 w2 w3 ' (a row matches word w when words
-- LIKE '% w %'), and the writer adds one log_word_blocks row per app per commit: the id and ts
-- range of that app's rows in the commit and the union of their words, GIN-indexed. A keyword
-- query looks up the blocks holding every word first and reads only their id ranges.
--
-- Invariant: every log row lies in an id range of a block of its app whose words include all
-- of the row's words of at most 256 characters (longer ones are left out of blocks: a GIN key
-- is at most 2,712 bytes, and a query for such a word reads the rows instead).
CREATE TABLE log_word_blocks (
    app_id BIGINT NOT NULL,
    first_id BIGINT NOT NULL,
    last_id BIGINT NOT NULL,
    min_ts BIGINT NOT NULL,
    max_ts BIGINT NOT NULL,
    words TEXT[] NOT NULL,
    PRIMARY KEY (app_id, first_id)
);

-- Existing rows: blocks of 2,000 consecutive rows of an app.
INSERT INTO log_word_blocks (app_id, first_id, last_id, min_ts, max_ts, words)
SELECT r.app_id, r.first_id, r.last_id, r.min_ts, r.max_ts,
       ARRAY(SELECT DISTINCT w FROM logs l CROSS JOIN unnest(l.words) AS w
             WHERE l.app_id = r.app_id AND l.id BETWEEN r.first_id AND r.last_id AND length(w) <= 256)
FROM (
    SELECT app_id, min(id) AS first_id, max(id) AS last_id, min(ts) AS min_ts, max(ts) AS max_ts
    FROM (SELECT app_id, id, ts, (row_number() OVER (PARTITION BY app_id ORDER BY id) - 1) / 2000 AS block
          FROM logs) numbered
    GROUP BY app_id, block
) r;

CREATE INDEX log_word_blocks_words ON log_word_blocks USING GIN (words);

-- The blocks of an app holding every word of `words` that may hold rows in [ts_from, ts_to]
-- with ids above after_id, at most max_blocks of them, in no order. Always through the GIN
-- index: a block's words are thousands of words in a TOASTed array, ~70 us to read from the
-- table, which the planner does not know; left alone it reads every block of the app instead
-- (750 blocks: 50 ms, against 0.3 ms through the index, measured). Hence the settings, and
-- `app_id + 0`, which keeps the primary key from being used to find the app's blocks.
CREATE FUNCTION log_word_blocks_holding(
    p_app_id BIGINT, p_words TEXT[], p_ts_from BIGINT, p_ts_to BIGINT, p_after_id BIGINT, p_max_blocks INTEGER
) RETURNS TABLE (first_id BIGINT, last_id BIGINT, min_ts BIGINT, max_ts BIGINT)
LANGUAGE sql STABLE
SET enable_seqscan = off SET enable_indexscan = off
AS $$
    SELECT b.first_id, b.last_id, b.min_ts, b.max_ts FROM log_word_blocks b
    WHERE b.words @> p_words AND b.app_id + 0 = p_app_id
      AND b.max_ts >= p_ts_from AND b.min_ts <= p_ts_to AND b.last_id > p_after_id
    LIMIT p_max_blocks
$$;

DROP INDEX logs_words;
ALTER TABLE logs ALTER COLUMN words DROP DEFAULT;
ALTER TABLE logs ALTER COLUMN words TYPE TEXT USING ' ' || array_to_string(words, ' ') || ' ';
ALTER TABLE logs ALTER COLUMN words SET DEFAULT '';

CREATE FUNCTION log_word_blocks_app_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM log_word_blocks WHERE app_id = OLD.id;
    RETURN OLD;
END;
$$;
CREATE TRIGGER log_word_blocks_app_delete AFTER DELETE ON apps FOR EACH ROW EXECUTE FUNCTION log_word_blocks_app_delete();
