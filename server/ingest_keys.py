"""The API keys of POST /ingest: looked up once per process, checked again by every commit.

Looking the key up for every request (a pooled connection and a round trip on PostgreSQL)
cost the event loop a fifth of its time per ingest request. So a key found active is kept
here, and the check that it still is moves into the writer's transaction: before a commit
stores or records anything, it reads which of its batches' keys are still active
(`server._pg_writer`, `server._sqlite_writer`) and answers the other batches' requests 401,
the answer for an unknown key. A revoked key therefore gets 401 on its next request, on every
server process, exactly as without the cache: the revocation committed before that request
arrived, so before its commit read the keys. Requests that do not reach the writer (nothing
to store and no batch id), and those about to be refused for another reason, look the key
up again first (`recheck`), so they too answer 401 for a revoked key.

Bound: at most `max_entries` keys (the oldest is forgotten first); only keys that were
found active are kept, so unknown keys cannot fill it.
"""

from __future__ import annotations

from server.apps import IngestKey, verify_ingest_key
from server.db import DB
from server.security import hash_secret

__all__ = ["IngestKeys"]


class IngestKeys:
    def __init__(self, db: DB, max_entries: int = 10_000) -> None:
        self.db = db
        self.max_entries = max_entries
        self._found: dict[str, IngestKey] = {}  # by the key's hash; insertion order = age

    def __len__(self) -> int:
        return len(self._found)

    async def find(self, key: str) -> tuple[IngestKey | None, bool]:
        """The key's app and environment (None: unknown or revoked), and whether the answer
        came from the cache (then only the commit, or `recheck`, has checked it)."""
        digest = hash_secret(key)
        found = self._found.get(digest)
        if found is not None:
            return found, True
        return await self._look_up(digest), False

    async def recheck(self, key: str) -> IngestKey | None:
        """The key looked up in the database now (and the cache brought up to date)."""
        return await self._look_up(hash_secret(key))

    def forget(self, key_id: int) -> None:
        """Drop the key with this id (its commit found it revoked)."""
        for digest in [d for d, found in self._found.items() if found.key_id == key_id]:
            del self._found[digest]

    async def _look_up(self, digest: str) -> IngestKey | None:
        found = await verify_ingest_key(self.db, digest)
        if found is None:
            self._found.pop(digest, None)
            return None
        if digest not in self._found and len(self._found) >= self.max_entries:
            del self._found[next(iter(self._found))]
        self._found[digest] = found
        return found
