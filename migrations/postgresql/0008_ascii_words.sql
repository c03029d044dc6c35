-- ASCII messages' words are no longer stored (server/fulltext.py, stored_word_text): logs.words
-- is NULL for them, and log_words() derives the same ' w1 w2 ' text from the message when a
-- keyword query checks a row. Lower-casing under the "C" collation changes A-Z only, and
-- translate() turns every ASCII character that is not a letter or digit into a space: exactly
-- Python's word_text for ASCII text (tests/server/test_fulltext.py checks every character).
-- Rows stored before keep their words text.
ALTER TABLE logs ALTER COLUMN words DROP NOT NULL, ALTER COLUMN words DROP DEFAULT;

CREATE FUNCTION log_words(message TEXT, words TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(words, ' ' || translate(lower(message COLLATE "C"),
        E'\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f !"#$%&\x27()*+,-./:;<=>?@[\x5c]^_`{|}~\x7f',
        '                                                                 ') || ' ')
$$;

-- Whether a log has `word` (letters and digits, lower-cased). For an ASCII message the cheap
-- substring test comes first: deriving the words text for every candidate row (translate()
-- looks each character up in its list) made a keyword query's row checks 8x slower (p95 4 ->
-- 35 ms over 1M logs, docs/benchmarks.md).
CREATE FUNCTION log_has_word(message TEXT, words TEXT, word TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN words IS NOT NULL THEN strpos(words, ' ' || word || ' ') > 0
                ELSE strpos(lower(message COLLATE "C"), word) > 0
                     AND strpos(log_words(message, NULL), ' ' || word || ' ') > 0 END
$$;

-- Word blocks compare their words bytewise: with the database's collation every comparison
-- the GIN index makes went through the C library's strcoll (a fifth of a block's insert time
-- with C.UTF-8, more with other locales). Equality, which is all a block lookup asks, is the same.
ALTER TABLE log_word_blocks ALTER COLUMN words TYPE TEXT[] COLLATE "C";
