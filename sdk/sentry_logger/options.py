"""Configuration resolution: arguments, then environment, then config file.

Each setting is resolved on its own, in that order, and remembers where it
came from so that ``sentry-logger status`` and error messages can say so.
The API key is validated locally (format only) and the DSN must be an http(s)
URL; anything wrong raises ``ConfigurationError`` naming every place looked at.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .config import PROFILE_ENV_VAR, ConfigFile, config_path, load_config
from .errors import ConfigurationError

__all__ = [
    "API_KEY_PATTERN",
    "ENV_VARS",
    "ResolvedConfig",
    "Setting",
    "default_service",
    "key_hint",
    "resolve",
    "resolve_settings",
]

API_KEY_PATTERN = re.compile(r"sk_([a-z0-9][a-z0-9-]{0,31})_([0-9a-f]{40})")
ENV_VARS = {
    "api_key": "SENTRY_API_KEY",
    "dsn": "SENTRY_DSN",
    "environment": "SENTRY_ENVIRONMENT",
    "release": "SENTRY_RELEASE",
    "service": "SENTRY_SERVICE",
}


@dataclass(frozen=True)
class Setting:
    """A resolved value and a human-readable description of its source."""

    value: str | None = field(repr=False)
    source: str


@dataclass(frozen=True)
class ResolvedConfig:
    """Validated configuration. ``repr`` shows the key prefix only."""

    api_key: str = field(repr=False)
    dsn: str
    environment: str
    release: str | None
    service: str
    profile: str | None
    sources: Mapping[str, str] = field(repr=False)

    @property
    def key_prefix(self) -> str:
        return key_hint(self.api_key)

    @property
    def ingest_url(self) -> str:
        return self.dsn + "/ingest"


def key_hint(api_key: str) -> str:
    """``sk_prod_1a2b…``: enough to tell keys apart, useless to an attacker."""
    match = API_KEY_PATTERN.fullmatch(api_key)
    if match is None:
        return "<invalid key>"
    return f"sk_{match.group(1)}_{match.group(2)[:4]}\N{HORIZONTAL ELLIPSIS}"


def default_service() -> str:
    """The running script or module name (``python -m app`` -> ``app``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        name: str = spec.name
        return name.removesuffix(".__main__")
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    stem = Path(argv0).stem if argv0 not in ("", "-c", "-") else ""
    return stem or "python"


def resolve_settings(
    arguments: Mapping[str, str | None],
    *,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
    config: ConfigFile | None = None,
) -> tuple[dict[str, Setting], ConfigFile, str | None]:
    """Resolve each setting without validating it (``status`` shows the raw result).

    Returns the settings, the config file that was consulted and the name of
    the profile used (if any).
    """
    env = os.environ if env is None else env
    config = load_config(config_path(env)) if config is None else config
    chosen = config.select(profile or env.get(PROFILE_ENV_VAR) or None)
    where = f"config file {config.path}" + (f" (profile {chosen.name!r})" if chosen else "")
    settings: dict[str, Setting] = {}
    for name, var in ENV_VARS.items():
        if arguments.get(name):
            settings[name] = Setting(arguments[name], "argument")
        elif env.get(var):
            settings[name] = Setting(env[var], f"environment variable {var}")
        elif chosen is not None and getattr(chosen, name, None):
            settings[name] = Setting(getattr(chosen, name), where)
        else:
            settings[name] = Setting(None, "not set")
    return settings, config, chosen.name if chosen else None


def resolve(
    api_key: str | None = None,
    dsn: str | None = None,
    *,
    environment: str | None = None,
    release: str | None = None,
    service: str | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedConfig:
    """Resolve and validate the configuration ``init()`` and the CLI use."""
    arguments = {"api_key": api_key, "dsn": dsn, "environment": environment,
                 "release": release, "service": service}
    settings, config, profile_name = resolve_settings(arguments, profile=profile, env=env)
    key = settings["api_key"]
    if not key.value:
        raise ConfigurationError(
            f"sentry-logger: no API key found. Looked at: {_looked_at(config, 'api_key')}. "
            "Pass init(api_key=...), or export SENTRY_API_KEY=sk_<environment>_<40 hex chars> "
            "(create a key in the dashboard under your app's API keys)."
        )
    match = API_KEY_PATTERN.fullmatch(key.value.strip())
    if match is None:
        raise ConfigurationError(
            f"sentry-logger: the API key from {key.source} is not a valid key: {_key_problem(key.value)}. "
            "Expected sk_<environment>_<40 lowercase hex characters>; copy it again from the dashboard. "
            f"Looked at: {_looked_at(config, 'api_key')}."
        )
    dsn_setting = settings["dsn"]
    if not dsn_setting.value:
        raise ConfigurationError(
            f"sentry-logger: no DSN (server URL) found. Looked at: {_looked_at(config, 'dsn')}. "
            "Pass init(dsn=...), or export SENTRY_DSN=https://your-sentry-logger-server."
        )
    env_setting = settings["environment"]
    env_value = (env_setting.value or match.group(1)).strip()
    sources = {name: s.source for name, s in settings.items()}
    if not env_setting.value:
        sources["environment"] = "API key label"
    if not settings["service"].value:
        sources["service"] = "script name"
    return ResolvedConfig(
        api_key=key.value.strip(),
        dsn=_normalise_dsn(dsn_setting.value.strip(), dsn_setting.source),
        environment=env_value,
        release=(settings["release"].value or "").strip() or None,
        service=(settings["service"].value or "").strip() or default_service(),
        profile=profile_name,
        sources=sources,
    )


def _looked_at(config: ConfigFile, name: str) -> str:
    state = "" if config.exists else " (not found)"
    return (f"the {name} argument of init(), the environment variable {ENV_VARS[name]}, "
            f"the config file {config.path}{state}")


def _key_problem(value: str) -> str:
    value = value.strip()
    if not value.startswith("sk_"):
        return f"it does not start with 'sk_' ({len(value)} characters)"
    label, sep, secret = value[3:].rpartition("_")
    if not sep:
        return "it has no '_' between the environment label and the secret"
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", label):
        return f"the environment label {label[:32]!r} must match [a-z0-9][a-z0-9-]{{0,31}}"
    if len(secret) != 40:
        return f"the secret part has {len(secret)} characters instead of 40"
    return "the secret part must be 40 lowercase hexadecimal characters"


def _normalise_dsn(value: str, source: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = value if "@" not in value else "<hidden: contains credentials>"
        raise ConfigurationError(
            f"sentry-logger: the DSN from {source} ({shown!r}) is not an http(s) URL; "
            "it should be the server's base URL, e.g. https://logs.example.com or http://127.0.0.1:8000"
        )
    # a pasted endpoint URL: the SDK appends /ingest itself
    path = parts.path.rstrip("/").removesuffix("/ingest")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
