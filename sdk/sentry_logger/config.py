"""The SDK's configuration file, shared with the ``sentry-logger`` CLI.

Format (``~/.sentry_logger/config.json``, path overridable with the
``SENTRY_LOGGER_CONFIG`` environment variable)::

    {
      "default_profile": "prod",
      "profiles": {
        "prod": {"api_key": "sk_prod_...", "dsn": "https://logs.example.com",
                 "app": "checkout", "environment": "prod"}
      }
    }

The file holds API keys, so it is written with mode 0600 inside a 0700
directory, atomically (temporary file + ``os.replace``) so that a reader never
sees half a file, and merged under a lock so that two writers (say, two
``sentry-logger init`` runs) do not lose each other's profiles.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "CONFIG_ENV_VAR",
    "PROFILE_ENV_VAR",
    "PROFILE_FIELDS",
    "ConfigFile",
    "Profile",
    "config_path",
    "load_config",
    "write_profile",
]

CONFIG_ENV_VAR = "SENTRY_LOGGER_CONFIG"
PROFILE_ENV_VAR = "SENTRY_PROFILE"
PROFILE_FIELDS = ("api_key", "dsn", "app", "environment")
_DIR_MODE = 0o700
_FILE_MODE = 0o600


@dataclass(frozen=True)
class Profile:
    """One named profile of the config file. ``api_key`` is kept out of repr."""

    name: str
    api_key: str | None = field(default=None, repr=False)
    dsn: str | None = None
    app: str | None = None
    environment: str | None = None


@dataclass(frozen=True)
class ConfigFile:
    """The parsed config file (empty when the file does not exist)."""

    path: Path
    exists: bool
    default_profile: str | None = None
    profiles: Mapping[str, Profile] = field(default_factory=dict)

    def select(self, name: str | None) -> Profile | None:
        """Return the profile called ``name``, else the default profile.

        Raises ``ConfigurationError`` when a profile is asked for by name and
        the file does not have it; returns ``None`` when nothing was asked for
        and the file has no default.
        """
        wanted = name or self.default_profile
        if wanted is None:
            return None
        profile = self.profiles.get(wanted)
        if profile is None and name is not None:
            known = ", ".join(sorted(self.profiles)) or "none"
            raise ConfigurationError(
                f"profile {name!r} not found in {self.path} (profiles there: {known}); "
                f"run `sentry-logger init --profile {name}` or pick another profile"
            )
        return profile


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives: ``$SENTRY_LOGGER_CONFIG`` or ``~/.sentry_logger/config.json``."""
    env = os.environ if env is None else env
    override = env.get(CONFIG_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".sentry_logger" / "config.json"


def load_config(path: Path | None = None) -> ConfigFile:
    """Read and validate the config file; a missing file is an empty config."""
    path = config_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigFile(path=path, exists=False)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the config file {path}: {exc.strerror}") from None
    data = _parse(path, text)
    profiles = {
        name: Profile(name=name, **{k: _str_or_none(path, name, k, v.get(k)) for k in PROFILE_FIELDS})
        for name, v in data.get("profiles", {}).items()
    }
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigurationError(f"{path}: 'default_profile' must be a string")
    return ConfigFile(path=path, exists=True, default_profile=default, profiles=profiles)


def write_profile(
    name: str,
    values: Mapping[str, str | None],
    *,
    make_default: bool = False,
    path: Path | None = None,
) -> Path:
    """Merge ``values`` into profile ``name`` and write the file atomically.

    Other profiles and unknown top-level keys are kept. A value of ``None``
    removes that field from the profile. The directory is created with mode
    0700 and the file is written with mode 0600. Returns the path written.
    """
    unknown = set(values) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"unknown profile fields: {sorted(unknown)}")
    path = config_path() if path is None else path
    path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, _DIR_MODE)
    with _locked(path):
        try:
            data = _parse(path, path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        profiles = data.setdefault("profiles", {})
        profile = dict(profiles.get(name, {}))
        for key, value in values.items():
            if value is None:
                profile.pop(key, None)
            else:
                profile[key] = value
        profiles[name] = profile
        if make_default or not data.get("default_profile"):
            data["default_profile"] = name
        _atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"the config file {path} is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"the config file {path} must hold a JSON object")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise ConfigurationError(f"{path}: 'profiles' must map profile names to objects")
    return data


def _str_or_none(path: Path, profile: str, key: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(f"{path}: profiles.{profile}.{key} must be a string")


def _atomic_write(path: Path, text: str) -> None:
    # mkstemp creates the file with mode 0600, before any secret is written.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the config file (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace still prevents torn files
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
