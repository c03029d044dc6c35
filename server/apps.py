"""Apps and their ingest API keys. Every function that takes an app checks ownership."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.accounts import User
from server.db import DB, as_bigint
from server.errors import ApiError
from server.security import ENVIRONMENT_RE, hash_secret, new_api_key, now_s

__all__ = [
    "DEFAULT_ENVIRONMENT",
    "IngestKey",
    "create_app",
    "create_key",
    "delete_app",
    "get_app",
    "list_apps",
    "list_keys",
    "regenerate_key",
    "revoke_key",
    "update_app",
    "verify_ingest_key",
]

DEFAULT_ENVIRONMENT = "production"
NAME_MAX = 64
DESCRIPTION_MAX = 500
_APP_COLUMNS = "a.id, a.name, a.description, a.created_at"
_KEY_COLUMNS = "k.id, k.app_id, k.environment, k.prefix, k.created_at, k.last_used_at, k.revoked_at"


@dataclass(frozen=True)
class IngestKey:
    key_id: int
    app_id: int
    environment: str


def _clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(422, "invalid_field", "name is required", field="name")
    cleaned: str = name.strip()
    if len(cleaned) > NAME_MAX:
        raise ApiError(422, "invalid_field", f"name is {len(cleaned)} characters; the limit is {NAME_MAX}", field="name")
    return cleaned


def _clean_description(description: Any) -> str:
    if description is None:
        return ""
    if not isinstance(description, str):
        raise ApiError(422, "invalid_field", "description must be a string", field="description")
    if len(description) > DESCRIPTION_MAX:
        raise ApiError(
            422, "invalid_field", f"description is {len(description)} characters; the limit is {DESCRIPTION_MAX}",
            field="description",
        )
    return description.strip()


def clean_environment(environment: Any) -> str:
    if environment is None or environment == "":
        return DEFAULT_ENVIRONMENT
    if not isinstance(environment, str) or not ENVIRONMENT_RE.match(environment):
        raise ApiError(
            422, "invalid_field",
            "environment must be 1-32 characters of a-z, 0-9 and '-', starting with a letter or digit",
            field="environment",
        )
    return environment


async def _name_taken(db: DB, user: User, name: str, except_id: int | None = None) -> bool:
    row = await db.fetch_one(
        "SELECT id FROM apps WHERE owner_id = :owner AND lower(name) = lower(:name)", {"owner": user.id, "name": name}
    )
    return row is not None and row["id"] != except_id


async def create_app(
    db: DB, user: User, name: Any, description: Any = None, environment: Any = None
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A new app with its first key. Returns (app, full key shown once, key row)."""
    name, description, environment = _clean_name(name), _clean_description(description), clean_environment(environment)
    if await _name_taken(db, user, name):
        raise ApiError(409, "name_taken", f"you already have an app named {name!r}", field="name")
    now = now_s()
    app_id = await db.execute(
        "INSERT INTO apps (owner_id, name, description, created_at) VALUES (:owner, :name, :d, :now) RETURNING id",
        {"owner": user.id, "name": name, "d": description, "now": now},
    )
    app = {"id": int(app_id), "name": name, "description": description, "created_at": now}
    key, key_row = await _insert_key(db, int(app_id), environment)
    return app, key, key_row


async def list_apps(db: DB, user: User) -> list[dict[str, Any]]:
    return await db.fetch_all(
        f"SELECT {_APP_COLUMNS} FROM apps a WHERE a.owner_id = :owner ORDER BY lower(a.name)", {"owner": user.id}
    )


async def get_app(db: DB, user: User, app_id: Any) -> dict[str, Any]:
    """The app if `user` owns it; 404 otherwise (never 403: others' apps do not exist for you)."""
    numeric = as_bigint(app_id)
    row = None if numeric is None else await db.fetch_one(
        f"SELECT {_APP_COLUMNS} FROM apps a WHERE a.id = :id AND a.owner_id = :owner", {"id": numeric, "owner": user.id}
    )
    if row is None:
        raise ApiError(404, "app_not_found", f"no app with id {app_id}")
    return row


async def update_app(db: DB, user: User, app_id: Any, fields: dict[str, Any]) -> dict[str, Any]:
    app = await get_app(db, user, app_id)
    if "name" in fields:
        name = _clean_name(fields["name"])
        if await _name_taken(db, user, name, except_id=app["id"]):
            raise ApiError(409, "name_taken", f"you already have an app named {name!r}", field="name")
        app["name"] = name
    if "description" in fields:
        app["description"] = _clean_description(fields["description"])
    await db.execute(
        "UPDATE apps SET name = :name, description = :d WHERE id = :id",
        {"name": app["name"], "d": app["description"], "id": app["id"]},
    )
    return app


async def delete_app(db: DB, user: User, app_id: Any) -> None:
    """Delete the app, its keys, its logs and its ingest bookkeeping."""
    app = await get_app(db, user, app_id)
    async with db.transaction() as tx:
        for table in ("api_keys", "logs", "ingest_batches", "sdk_reports"):
            await tx.execute(f"DELETE FROM {table} WHERE app_id = :id", {"id": app["id"]})
        await tx.execute("DELETE FROM apps WHERE id = :id", {"id": app["id"]})


async def _insert_key(db: DB, app_id: int, environment: str) -> tuple[str, dict[str, Any]]:
    key, prefix = new_api_key(environment)
    now = now_s()
    key_id = await db.execute(
        "INSERT INTO api_keys (app_id, environment, prefix, key_hash, created_at) "
        "VALUES (:app, :env, :prefix, :h, :now) RETURNING id",
        {"app": app_id, "env": environment, "prefix": prefix, "h": hash_secret(key), "now": now},
    )
    row = {
        "id": int(key_id), "app_id": app_id, "environment": environment, "prefix": prefix,
        "created_at": now, "last_used_at": None, "revoked_at": None,
    }
    return key, row


async def create_key(db: DB, user: User, app_id: Any, environment: Any) -> tuple[str, dict[str, Any]]:
    app = await get_app(db, user, app_id)
    return await _insert_key(db, app["id"], clean_environment(environment))


async def list_keys(db: DB, user: User, app_id: Any, include_revoked: bool = False) -> list[dict[str, Any]]:
    app = await get_app(db, user, app_id)
    where = "" if include_revoked else " AND k.revoked_at IS NULL"
    return await db.fetch_all(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.app_id = :app{where} ORDER BY k.id", {"app": app["id"]}
    )


async def _owned_key(db: DB, user: User, app_id: Any, key_id: Any) -> dict[str, Any]:
    app = await get_app(db, user, app_id)
    numeric = as_bigint(key_id)
    row = None if numeric is None else await db.fetch_one(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.id = :id AND k.app_id = :app", {"id": numeric, "app": app["id"]}
    )
    if row is None:
        raise ApiError(404, "key_not_found", f"no key with id {key_id} in this app")
    return row


async def revoke_key(db: DB, user: User, app_id: Any, key_id: Any) -> dict[str, Any]:
    row = await _owned_key(db, user, app_id, key_id)
    if row["revoked_at"] is None:
        row["revoked_at"] = now_s()
        await db.execute("UPDATE api_keys SET revoked_at = :now WHERE id = :id", {"now": row["revoked_at"], "id": row["id"]})
    return row


async def regenerate_key(db: DB, user: User, app_id: Any, key_id: Any) -> tuple[str, dict[str, Any]]:
    """A new key for the same environment; the old one is revoked in the same transaction."""
    row = await _owned_key(db, user, app_id, key_id)
    if row["revoked_at"] is not None:
        raise ApiError(409, "key_revoked", "this key is already revoked; create a new key instead")
    key, prefix = new_api_key(row["environment"])
    now = now_s()
    async with db.transaction() as tx:
        await tx.execute("UPDATE api_keys SET revoked_at = :now WHERE id = :id", {"now": now, "id": row["id"]})
        key_id_new = await tx.execute(
            "INSERT INTO api_keys (app_id, environment, prefix, key_hash, created_at) "
            "VALUES (:app, :env, :prefix, :h, :now) RETURNING id",
            {"app": row["app_id"], "env": row["environment"], "prefix": prefix, "h": hash_secret(key), "now": now},
        )
    new_row = {
        "id": int(key_id_new), "app_id": row["app_id"], "environment": row["environment"], "prefix": prefix,
        "created_at": now, "last_used_at": None, "revoked_at": None,
    }
    return key, new_row


async def verify_ingest_key(db: DB, key_hash: str) -> IngestKey | None:
    """The app and environment of the active key with this hash (security.hash_secret); None
    for unknown and revoked keys alike. A database read every time (server.ingest_keys
    keeps what it finds)."""
    row = await db.fetch_row_fast(
        "SELECT id, app_id, environment FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", key_hash
    )
    return None if row is None else IngestKey(int(row[0]), int(row[1]), row[2])
