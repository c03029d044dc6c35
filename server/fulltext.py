"""What a "word" is for keyword search, the same on SQLite and PostgreSQL.

A word is a run of letters and digits, compared case-insensitively; a log matches a keyword
when its message contains every word of the keyword. SQLite's FTS5 `unicode61` tokenizer
splits messages exactly so. On PostgreSQL the writer stores each message's distinct words
in `logs.words` (text[], GIN-indexed) and queries ask `words @> ARRAY[...]`: twice the
insert rate of a `to_tsvector(regexp_replace(...))` expression index (measured), and no
parser whose idea of a word (host names, paths, emails) differs from SQLite's.
"""

from __future__ import annotations

import re

__all__ = ["words"]

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The distinct lower-cased words of `text`, in first-seen order."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))
