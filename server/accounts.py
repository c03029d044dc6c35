"""Users, dashboard sessions and personal API tokens. Secrets are stored only as hashes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from server.db import DB
from server.security import hash_secret, new_session_id, new_token, now_s

__all__ = [
    "LOCAL_ISSUER",
    "User",
    "create_api_token",
    "create_session",
    "delete_session",
    "ensure_user_by_email",
    "session_user",
    "token_user",
    "upsert_user",
    "user_by_email",
]

LOCAL_ISSUER = "local"
# Users provisioned by email (CLI) before they first sign in; claimed by the first verified
# sign-in with that email.
INVITED_ISSUER = "invited"
LOCAL_DEV_EMAIL = "developer@localhost"


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    issuer: str
    sub: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(int(row["id"]), row["email"], row["name"], row["issuer"], row["sub"])


_USER_COLUMNS = "u.id, u.email, u.name, u.issuer, u.sub"


async def upsert_user(db: DB, *, issuer: str, sub: str, email: str, name: str = "") -> User:
    """The user with this (issuer, sub), created on first sign-in; email and name follow the provider."""
    now = now_s()
    async with db.transaction() as tx:
        row = await tx.fetch_one(
            f"SELECT {_USER_COLUMNS} FROM users u WHERE u.issuer = :issuer AND u.sub = :sub",
            {"issuer": issuer, "sub": sub},
        )
        if row is None and issuer not in (LOCAL_ISSUER, INVITED_ISSUER):
            row = await tx.fetch_one(
                f"SELECT {_USER_COLUMNS} FROM users u WHERE u.issuer = :invited AND lower(u.email) = lower(:email)",
                {"invited": INVITED_ISSUER, "email": email},
            )
            if row is not None:
                await tx.execute(
                    "UPDATE users SET issuer = :issuer, sub = :sub WHERE id = :id",
                    {"issuer": issuer, "sub": sub, "id": row["id"]},
                )
        if row is None:
            user_id = await tx.execute(
                "INSERT INTO users (issuer, sub, email, name, created_at, last_login_at) "
                "VALUES (:issuer, :sub, :email, :name, :now, :now) RETURNING id",
                {"issuer": issuer, "sub": sub, "email": email, "name": name, "now": now},
            )
        else:
            user_id = row["id"]
            await tx.execute(
                "UPDATE users SET email = :email, name = :name, last_login_at = :now WHERE id = :id",
                {"email": email, "name": name, "now": now, "id": user_id},
            )
    return User(int(user_id), email, name, issuer, sub)


async def user_by_email(db: DB, email: str) -> User | None:
    row = await db.fetch_one(
        f"SELECT {_USER_COLUMNS} FROM users u WHERE lower(u.email) = lower(:email) ORDER BY u.id LIMIT 1",
        {"email": email},
    )
    return None if row is None else User.from_row(row)


async def ensure_user_by_email(db: DB, email: str) -> User:
    """The user with this email, or a new one that their first verified sign-in will claim."""
    user = await user_by_email(db, email)
    if user is not None:
        return user
    if email.lower() == LOCAL_DEV_EMAIL:
        return await upsert_user(db, issuer=LOCAL_ISSUER, sub="developer", email=LOCAL_DEV_EMAIL, name="Local developer")
    return await upsert_user(db, issuer=INVITED_ISSUER, sub=email.lower(), email=email, name="")


async def create_session(db: DB, user: User, lifetime_hours: int) -> str:
    """A new session; returns the opaque id for the cookie (only its hash is stored)."""
    session_id = new_session_id()
    now = now_s()
    await db.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at) "
        "VALUES (:h, :user_id, :csrf, :now, :expires)",
        {
            "h": hash_secret(session_id),
            "user_id": user.id,
            "csrf": secrets.token_urlsafe(24),
            "now": now,
            "expires": now + lifetime_hours * 3600,
        },
    )
    return session_id


async def session_user(db: DB, session_id: str) -> tuple[User, str] | None:
    """The signed-in user and the session's CSRF token, or None for an unknown or expired session."""
    row = await db.fetch_one(
        f"SELECT {_USER_COLUMNS}, s.csrf_token FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.id_hash = :h AND s.expires_at > :now",
        {"h": hash_secret(session_id), "now": now_s()},
    )
    if row is None:
        return None
    return User.from_row(row), row["csrf_token"]


async def delete_session(db: DB, session_id: str) -> None:
    await db.execute("DELETE FROM sessions WHERE id_hash = :h", {"h": hash_secret(session_id)})


async def create_api_token(db: DB, user: User, name: str = "") -> tuple[str, dict[str, Any]]:
    """A new personal API token; the token itself is returned once, here."""
    token, prefix = new_token()
    now = now_s()
    token_id = await db.execute(
        "INSERT INTO api_tokens (user_id, name, prefix, token_hash, created_at) "
        "VALUES (:user_id, :name, :prefix, :h, :now) RETURNING id",
        {"user_id": user.id, "name": name, "prefix": prefix, "h": hash_secret(token), "now": now},
    )
    return token, {"id": int(token_id), "name": name, "prefix": prefix, "created_at": now}


async def token_user(db: DB, token: str) -> User | None:
    row = await db.fetch_one(
        f"SELECT {_USER_COLUMNS}, t.id AS token_id, t.last_used_at FROM api_tokens t "
        "JOIN users u ON u.id = t.user_id WHERE t.token_hash = :h AND t.revoked_at IS NULL",
        {"h": hash_secret(token)},
    )
    if row is None:
        return None
    now = now_s()
    if row["last_used_at"] is None or now - int(row["last_used_at"]) >= 60:
        await db.execute("UPDATE api_tokens SET last_used_at = :now WHERE id = :id", {"now": now, "id": row["token_id"]})
    return User.from_row(row)
