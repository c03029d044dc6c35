"""Every setting of the server, in one registry, read once.

Each setting has a name, a default and help text; `docs/configuration.md` documents
all of them (a test checks it). Values come from the environment, then from a `.env`
file in the working directory, then the default.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.config import Config

__all__ = ["SETTINGS", "Setting", "Settings", "load_settings"]


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    cast: Callable[[str], Any] = str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    # Core
    Setting("DATA_DIR", "./data", "Directory for the default SQLite database and the generated secret key."),
    Setting(
        "DATABASE_URL",
        "",
        "Database URL. Empty means a SQLite file `sentry_logger.db` under DATA_DIR. "
        "PostgreSQL: `postgresql://user:password@host:5432/dbname`.",
        secret=True,
    ),
    Setting(
        "PRODUCTION",
        "false",
        "Production mode: SECRET_KEY must be set, migrations are not applied on start-up "
        "(run `python -m server migrate`, the Procfile's release step), local sign-in is off.",
        _bool,
    ),
    Setting(
        "SECRET_KEY",
        "",
        "Secret used to sign the sign-in flow's short-lived cookie. Generated and kept in "
        "DATA_DIR/secret_key when unset outside production; required in production.",
        secret=True,
    ),
    Setting(
        "PUBLIC_URL",
        "",
        "Base URL users reach the server at (used for the DSN shown to users, OIDC redirects "
        "and the Secure cookie flag). Empty means http://HOST:PORT.",
    ),
    Setting("HOST", "127.0.0.1", "Address `python -m server run` listens on.", str),
    Setting("PORT", "8000", "Port `python -m server run` listens on.", int),
    Setting(
        "MIGRATE_ON_START",
        "",
        "Apply pending migrations when the server starts. Empty means: yes unless PRODUCTION.",
    ),
    Setting(
        "DASHBOARD",
        "true",
        "Serve the Reflex dashboard from the same process. `false` runs the API and ingest only.",
        _bool,
    ),
    Setting(
        "DASHBOARD_EXTRA_ORIGINS",
        "",
        "Comma-separated extra browser origins allowed to call the server with credentials (CORS, "
        "dashboard websocket), e.g. `http://localhost:3000` for the dashboard's dev mode. The server's "
        "own origins (PUBLIC_URL, localhost/127.0.0.1 on PORT) are always allowed.",
    ),
    # Sign-in
    Setting(
        "OIDC_DISCOVERY_URL",
        "https://accounts.google.com/.well-known/openid-configuration",
        "OpenID Connect discovery document of the sign-in provider.",
    ),
    Setting("OIDC_CLIENT_ID", "", "OAuth client id at the OIDC provider. Empty disables OIDC sign-in."),
    Setting("OIDC_CLIENT_SECRET", "", "OAuth client secret at the OIDC provider.", secret=True),
    Setting("OIDC_PROVIDER_NAME", "Google", "Name shown on the sign-in button."),
    Setting(
        "OIDC_ALLOWED_DOMAIN",
        "",
        "When set, only accounts whose `hd` (hosted domain) claim equals this value may sign in.",
    ),
    Setting(
        "LOCAL_LOGIN",
        "",
        "One-click local developer sign-in. Empty means: on when no OIDC client is configured "
        "and not PRODUCTION.",
    ),
    Setting(
        "LOCAL_LOGIN_ALLOW_REMOTE",
        "false",
        "Allow local developer sign-in even when the server listens on a non-loopback address.",
        _bool,
    ),
    Setting("SESSION_LIFETIME_HOURS", "336", "How long a dashboard session lasts.", int),
    # CLI device authorization (`sentry-logger init`, docs/device-flow.md)
    Setting(
        "DEVICE_CODE_LIFETIME_SECONDS",
        "600",
        "How long a `sentry-logger init` request (its device code and user code) can be approved and polled.",
        int,
    ),
    Setting(
        "DEVICE_POLL_INTERVAL_SECONDS",
        "5",
        "Seconds the CLI must wait between polls; polling faster gets `slow_down` and 5 more seconds.",
        int,
    ),
    Setting(
        "DEVICE_START_RATE_LIMIT",
        "20",
        "Device authorizations one address may start per minute (POST /sdk/device/start). 0 disables.",
        int,
    ),
    Setting(
        "DEVICE_WRONG_CODE_LIMIT",
        "10",
        "Wrong or expired user codes one user, and one address, may enter per 15 minutes on /sdk/link "
        "before getting 429. 0 disables.",
        int,
    ),
    # Ingest
    Setting("INGEST_MAX_BODY_BYTES", "5242880", "Largest /ingest body, compressed or decompressed.", int),
    Setting("INGEST_MAX_RECORDS", "1000", "Most log records in one /ingest request.", int),
    Setting("INGEST_MAX_MESSAGE_BYTES", "32768", "Largest log message, in UTF-8 bytes.", int),
    Setting("INGEST_MAX_ATTRIBUTES_BYTES", "16384", "Largest `attributes` object, serialised as JSON.", int),
    Setting("INGEST_MAX_ATTRIBUTE_DEPTH", "5", "Deepest nesting of `attributes`.", int),
    Setting("INGEST_MAX_TRACEBACK_BYTES", "65536", "Largest exception text, in UTF-8 bytes.", int),
    Setting(
        "INGEST_BATCH_RETENTION_HOURS",
        "24",
        "How long a committed `batch_id` is remembered, so a retried batch is not stored twice.",
        int,
    ),
    Setting(
        "INGEST_QUEUE_MAX_RECORDS",
        "200000",
        "Most records waiting for the writer; past it /ingest answers 503 with Retry-After.",
        int,
    ),
    Setting("INGEST_COMMIT_MAX_RECORDS", "20000", "Most records the writer commits in one transaction.", int),
    # Rate limits
    Setting(
        "INGEST_RATE_LIMIT",
        "200000",
        "Records per second one API key may send (token bucket, burst of two seconds' worth). 0 disables.",
        int,
    ),
    Setting("API_RATE_LIMIT", "1200", "Requests per minute one user or token may make to /api. 0 disables.", int),
    # Query
    Setting("QUERY_DEFAULT_LIMIT", "100", "Logs returned by the query API when `limit` is not given.", int),
    Setting("QUERY_MAX_LIMIT", "1000", "Most logs the query API returns in one page.", int),
    # Health metrics (docs/health.md)
    Setting(
        "HEALTH_AGGREGATION",
        "true",
        "Count new logs into the health aggregates (counts per level, request durations, error messages). `false` "
        "stores logs only, never counted, and the health views stay empty.",
        _bool,
    ),
    Setting(
        "HEALTH_FLUSH_SECONDS",
        "1",
        "How often the health aggregator counts new logs into the health tables (at least 0.05; on SQLite at most "
        "once a second, after the WAL checkpoint). The health API and dashboard have it count before they read.",
        float,
    ),
    Setting("HEALTH_WINDOW_MINUTES", "15", "Window the health status and summary look at (the last N whole minutes).", int),
    Setting(
        "HEALTH_SILENT_MINUTES",
        "15",
        "A service with no record for this long is `silent`, whatever else it sent before.",
        int,
    ),
    Setting("HEALTH_DEGRADED_ERROR_RATE", "0.05", "Error rate (ERROR + CRITICAL / all records) from which a service is `degraded`.", float),
    Setting("HEALTH_FAILING_ERROR_RATE", "0.25", "Error rate from which a service is `failing`.", float),
    Setting("HEALTH_DEGRADED_P95_MS", "1000", "Request p95 latency (ms) from which a service is `degraded`.", float),
    Setting("HEALTH_FAILING_P95_MS", "5000", "Request p95 latency (ms) from which a service is `failing`.", float),
    Setting(
        "HEALTH_MIN_RECORDS",
        "10",
        "Fewest records (and requests, for latency) in the window for the rate and latency thresholds to apply; "
        "below it any error makes the service `degraded`.",
        int,
    ),
    Setting("HEALTH_MINUTE_RETENTION_DAYS", "7", "How long per-minute health aggregates are kept.", int),
    Setting("HEALTH_HOUR_RETENTION_DAYS", "90", "How long per-hour health aggregates are kept.", int),
    Setting("HEALTH_DAY_RETENTION_DAYS", "0", "How long per-day health aggregates are kept; 0 keeps them.", int),
    # Live tail
    Setting(
        "HUB_URL",
        "memory://",
        "Pub/sub backend of the live tail: memory:// (one process), redis://host:port/db or "
        "postgresql://... (LISTEN/NOTIFY) to share the stream between server processes. See docs/live-tail.md.",
        secret=True,
    ),
    Setting(
        "HUB_CHANNEL_PREFIX",
        "sentry_logger",
        "Prefix of the live tail's pub/sub channel names (1-40 of a-z 0-9 _), so several installations "
        "can share one Redis or PostgreSQL.",
    ),
    Setting(
        "HUB_PUBLISH_QUEUE_MAX",
        "10000",
        "Most committed batches waiting to be published to the hub; past it a batch is not published "
        "(counted as publish_dropped_batches in /healthz).",
        int,
    ),
    Setting(
        "TAIL_QUEUE_MAX_LINES",
        "10000",
        "Most live lines queued for one tail subscriber; past it the subscriber skips lines and gets "
        "a `skipped` marker it can resume from.",
        int,
    ),
    Setting("TAIL_HEARTBEAT_SECONDS", "15", "A live tail with nothing to send sends a heartbeat this often.", float),
    Setting(
        "TAIL_MAX_DURATION_SECONDS",
        "3600",
        "Longest a live tail stays open; it then closes with code 4408 (reconnect with after_id to continue). 0 means no limit.",
        float,
    ),
    Setting("TAIL_MAX_PER_USER", "10", "Most live tails one user may have open at once in one server process.", int),
    Setting("TAIL_TOKEN_TTL_SECONDS", "60", "How long a tail token from POST /api/tail-tokens can open a tail.", int),
    Setting(
        "TAIL_SEND_TIMEOUT_SECONDS",
        "30",
        "A live tail whose client has not accepted a frame for this long is closed (code 4008).",
        float,
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The resolved settings; attribute names are the setting names in lower case."""

    values: Mapping[str, Any] = field(repr=False)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        shown = {k: ("***" if _BY_NAME[k].secret and v else v) for k, v in self.values.items()}
        return f"Settings({shown})"

    def replace(self, **overrides: Any) -> Settings:
        values = dict(self.values)
        values.update({k.upper(): v for k, v in overrides.items()})
        return Settings(values)

    @property
    def dialect(self) -> str:
        return "postgresql" if self.database_url.startswith(("postgres://", "postgresql")) else "sqlite"

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_client_id)

    @property
    def local_login_enabled(self) -> bool:
        if self.local_login == "":
            return not self.oidc_enabled and not self.production
        return _bool(self.local_login)

    @property
    def migrate_on_start_enabled(self) -> bool:
        if self.migrate_on_start == "":
            return not self.production
        return _bool(self.migrate_on_start)


def _secret_key(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = ".env", **overrides: Any) -> Settings:
    """Resolve every setting once. `overrides` (lower- or upper-case names) win over everything."""
    environ = os.environ if environ is None else environ
    config = Config(env_file if env_file and Path(env_file).exists() else None, environ=environ)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        key = setting.name.lower()
        if key in overrides or setting.name in overrides:
            values[setting.name] = overrides.get(key, overrides.get(setting.name))
            continue
        raw = config(setting.name, default=setting.default)
        try:
            values[setting.name] = setting.cast(raw)
        except ValueError as exc:
            raise ValueError(f"setting {setting.name}: {exc}") from None
    data_dir = Path(values["DATA_DIR"]).resolve()
    values["DATA_DIR"] = str(data_dir)
    if not values["DATABASE_URL"]:
        data_dir.mkdir(parents=True, exist_ok=True)
        values["DATABASE_URL"] = f"sqlite:///{data_dir / 'sentry_logger.db'}"
    if not values["SECRET_KEY"]:
        if values["PRODUCTION"]:
            raise ValueError("setting SECRET_KEY: required when PRODUCTION is true")
        values["SECRET_KEY"] = _secret_key(data_dir)
    return Settings(values)
