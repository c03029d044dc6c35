"""What a "word" is for keyword search, the same on SQLite and PostgreSQL.

A word is a run of letters and digits, compared case-insensitively; a log matches a keyword
when its message contains every word of the keyword. SQLite's FTS5 `unicode61` tokenizer
splits messages exactly so.

PostgreSQL has no index per row. The writer (`server._pg_writer`) stores each message's
words as text in `logs.words` (' w1 w2 w3 ', a row has word w when
`words LIKE '% w %'`) and adds one `log_word_blocks` row per app per commit: the id and ts
range of the app's rows in that commit and the union of their words, GIN-indexed. Queries
(`server.logs_query`) find the blocks holding every word and check rows only inside those
blocks' id ranges (or, for common words or otherwise narrow queries, scan rows as usual). Why:
the per-row `text[]` column and GIN index this replaced were more than half of the insert cost
(COPY of 1,600-row commits, backend CPU per row: 15.4 us with them, 6.0 us with the text
column alone, 9.7 us with text and blocks). A word keeps SQLite's meaning on PostgreSQL (no
`to_tsvector` parser with its own idea of words).
"""

from __future__ import annotations

import re

__all__ = ["BLOCK_WORD_MAX", "like_pattern", "split_words", "word_text", "words"]

_WORD = re.compile(r"[^\W_]+")
# Longer words are left out of word blocks: a GIN key is at most 2,712 bytes (256 characters
# are at most 1,024 UTF-8 bytes). A query for such a word checks rows without the blocks.
BLOCK_WORD_MAX = 256


# ASCII text (nearly every log line) takes a path 3x faster than the regular expression:
# every ASCII character that is not a letter or digit becomes a space, then split.
# (All 128 characters are in the table: a missing one costs translate() a KeyError.)
_ASCII_SEPARATORS = str.maketrans({c: c if c.isalnum() else " " for c in map(chr, range(128))})


def words(text: str) -> list[str]:
    """The distinct lower-cased words of `text`, in first-seen order."""
    return list(dict.fromkeys(split_words(text)))


def word_text(text: str) -> str:
    """`text`'s lower-cased words with a space (or several) before and after each, so that
    `LIKE '% w %'` finds word w: PostgreSQL's `logs.words` (see server._pg_writer)."""
    if text.isascii():
        return f" {text.lower().translate(_ASCII_SEPARATORS)} "
    return f" {' '.join(_WORD.findall(text.lower()))} "


def split_words(text: str) -> list[str]:
    """The lower-cased words of `text` in order, repeats included (cheaper than `words`)."""
    if text.isascii():
        return text.lower().translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(text.lower())


def like_pattern(word: str) -> str:
    """The LIKE pattern matching a stored ' w1 w2 ' words text that holds `word`."""
    # A word is letters and digits only: no LIKE wildcard (% _), escape (\) or separator.
    if _WORD.fullmatch(word) is None:
        raise ValueError(f"not a word: {word[:40]!r}")
    return f"% {word} %"
