"""What a "word" is for keyword search, the same on SQLite and PostgreSQL.

A word is a run of letters and digits, compared case-insensitively; a log matches a keyword
when its message contains every word of the keyword. SQLite's FTS5 `unicode61` tokenizer
splits messages exactly so.

PostgreSQL has no index per row. A message's words are the text ' w1 w2 w3 ' (a row has
word w when it holds ' w '), stored in `logs.words` by the writer (`server._pg_writer`) for
non-ASCII messages and derived from the message by the database for the others
(`log_has_word`, migration 0008); the writer also adds one `log_word_blocks` row per app
per commit: the id and ts range of the app's rows in that commit and the union of their
words, GIN-indexed. Queries
(`server.logs_query`) find the blocks holding every word and check rows only inside those
blocks' id ranges (or, for common words or otherwise narrow queries, scan rows as usual). Why:
the per-row `text[]` column and GIN index this replaced were more than half of the insert cost
(COPY of 1,600-row commits, backend CPU per row: 15.4 us with them, 6.0 us with the text
column alone, 9.7 us with text and blocks). A word keeps SQLite's meaning on PostgreSQL (no
`to_tsvector` parser with its own idea of words).
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = [
    "BLOCK_WORD_MAX", "PyWordSet", "WordSet", "distinct_words", "split_words", "stored_word_text", "word_list",
    "word_text", "words",
]

_WORD = re.compile(r"[^\W_]+")
# Longer words are left out of word blocks: a GIN key is at most 2,712 bytes (256 characters
# are at most 1,024 UTF-8 bytes). A query for such a word checks rows without the blocks.
BLOCK_WORD_MAX = 256


# ASCII text (nearly every log line) takes a path 3x faster than the regular expression:
# every ASCII character that is not a letter or digit becomes a space, then split.
# (All 128 characters are in the table: a missing one costs translate() a KeyError.)
# PostgreSQL's log_words() (migration 0008) lists the same characters, NUL aside (its text never
# holds NUL); tests/server/test_fulltext.py checks that both split every character alike.
_ASCII_SEPARATORS = str.maketrans({c: c if c.isalnum() else " " for c in map(chr, range(128))})


def words(text: str) -> list[str]:
    """The distinct lower-cased words of `text`, in first-seen order."""
    return list(dict.fromkeys(split_words(text)))


def word_text(text: str) -> str:
    """`text`'s lower-cased words with a space (or several) before and after each, so that
    ' w ' finds word w: PostgreSQL's `logs.words` (see server._pg_writer)."""
    if text.isascii():
        return f" {text.lower().translate(_ASCII_SEPARATORS)} "
    return f" {' '.join(_WORD.findall(text.lower()))} "


def stored_word_text(text: str) -> str | None:
    """PostgreSQL's `logs.words` for a message: None for an ASCII message, whose word text the
    database derives from the message when a query needs it (`log_words(message, words)`,
    migration 0008): storing it cost a text as long as the message on every row, and the
    writer's event loop 8% of its time to make it. Non-ASCII messages keep `word_text`."""
    return None if text.isascii() else word_text(text)


def distinct_words(texts: list[str]) -> set[str]:
    """The distinct lower-cased words of all `texts` (the union of their `words`)."""
    return set(word_list(texts))


def word_list(texts: list[str]) -> list[str]:
    """The lower-cased words of all `texts`, repeats included (each distinct text once): what
    `distinct_words` makes its set of, and PyWordSet adds to its own."""
    # Repeated messages (a flood of one error) are split once; hashing them costs ~1/30 of that.
    joined = " ".join(set(texts))
    if joined.isascii():  # one pass over all of them: 4x cheaper than a text at a time
        return joined.lower().translate(_ASCII_SEPARATORS).split()
    return [word for text in set(texts) for word in split_words(text)]


def split_words(text: str) -> list[str]:
    """The lower-cased words of `text` in order, repeats included (cheaper than `words`)."""
    if text.isascii():
        return text.lower().translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(text.lower())


class WordSet(Protocol):
    """The distinct words of texts, for a word block (server._pg_writer): server._speedups'
    WordSet (in C: no str per word) when built, PyWordSet otherwise (server.native.word_set)."""

    def add_texts(self, texts: list[str], /) -> None: ...
    def copy(self) -> WordSet: ...
    def text(self, max_chars: int, /) -> str:
        """The words of at most `max_chars` characters, each once, joined by one space."""
    def __len__(self) -> int: ...


class PyWordSet:
    """WordSet over a Python set of str."""

    __slots__ = ("_words",)

    def __init__(self) -> None:
        self._words: set[str] = set()

    def add_texts(self, texts: list[str], /) -> None:
        self._words.update(word_list(texts))

    def copy(self) -> PyWordSet:
        twin = PyWordSet()
        twin._words = set(self._words)
        return twin

    def text(self, max_chars: int, /) -> str:
        words = self._words
        if max(map(len, words), default=0) > max_chars:
            words = {w for w in words if len(w) <= max_chars}
        return " ".join(words)

    def __len__(self) -> int:
        return len(self._words)
