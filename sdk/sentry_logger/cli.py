"""The ``sentry-logger`` command: ``--version``, ``init``, ``test``, ``status``.

Subcommands are argparse subparsers registered in ``COMMANDS``; ``init`` (the
device flow that links this terminal to an account) lives in ``device.py``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from collections.abc import Callable, Sequence

from ._version import __version__
from .batch import build_batch
from .client import default_spool_root
from .device import add_arguments as _init_arguments
from .device import cmd_init
from .errors import ConfigurationError
from .options import API_KEY_PATTERN, key_hint, resolve, resolve_settings
from .record import Entry, Limits
from .spool import spool_directory
from .transport import Transport

__all__ = ["COMMANDS", "main"]

Command = Callable[[argparse.Namespace], int]


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-key", help="API key (default: SENTRY_API_KEY, then the config file)")
    parser.add_argument("--dsn", help="server base URL (default: SENTRY_DSN, then the config file)")
    parser.add_argument("--profile", help="config file profile (default: SENTRY_PROFILE, then default_profile)")


def _test_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_arguments(parser)
    parser.add_argument("--message", default="sentry-logger test record", help="text of the test record")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server")


def cmd_test(args: argparse.Namespace) -> int:
    """Send one test record with the same configuration resolution as ``init()``."""
    try:
        config = resolve(args.api_key, args.dsn, profile=args.profile, service="sentry-logger-cli")
    except ConfigurationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    print(f"Sending a test record to {config.ingest_url} with key {config.key_prefix} "
          f"(key from {config.sources['api_key']}, DSN from {config.sources['dsn']})")
    entry: Entry = (time.time(), "INFO", args.message, "sentry_logger.cli", None, None,
                    {"sentry_logger_test": True}, None, None, None, 0)
    common = {"service": config.service, "environment": config.environment, "host": socket.gethostname()}
    batch = build_batch([entry], common=common, limits=Limits(), report=None)
    transport = Transport(config.ingest_url, config.api_key, timeout=args.timeout)
    try:
        result = transport.send(batch.body)
    finally:
        transport.close()
    if result.outcome == "ok" and result.accepted >= 1:
        print(f"OK: the server accepted the test record (batch {batch.batch_id}). Look for service "
              f"'{config.service}', environment '{config.environment}' in the dashboard.")
        return 0
    if result.outcome == "ok":
        print(f"FAILED: the server answered {result.detail} but rejected the record; "
              "the server and SDK versions may not match.", file=sys.stderr)
    elif result.outcome == "auth_failed":
        print(f"FAILED: API key {config.key_prefix} rejected by the server ({result.detail}). The key is unknown "
              "to this server or was revoked: create a new key in the dashboard and set SENTRY_API_KEY.",
              file=sys.stderr)
    elif result.status is None:
        print(f"FAILED: {result.detail}. Check SENTRY_DSN ({config.dsn}) and that the server is running.",
              file=sys.stderr)
    else:
        print(f"FAILED: the server answered {result.detail}.", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    """Show where each setting comes from (key prefix only) and the spool state."""
    try:
        settings, config_file, profile = resolve_settings(
            {"api_key": args.api_key, "dsn": args.dsn}, profile=args.profile)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"sentry-logger {__version__}")
    print(f"config file: {config_file.path}" + ("" if config_file.exists else " (not found)"))
    print(f"profile:     {profile or '-'}")
    problems = 0
    for name, setting in settings.items():
        value = setting.value
        if name == "api_key" and value:
            shown = key_hint(value.strip())
            if API_KEY_PATTERN.fullmatch(value.strip()) is None:
                shown, problems = "INVALID FORMAT (expected sk_<environment>_<40 hex chars>)", problems + 1
        else:
            shown = value or _DEFAULTS.get(name, "-")
        print(f"{name + ':':<12} {shown}  [{setting.source}]")
    try:
        config = resolve(args.api_key, args.dsn, profile=args.profile)
    except ConfigurationError as exc:
        print(f"\nnot ready: {exc}")
        return 1
    directory = spool_directory(default_spool_root(), config.dsn, config.api_key)
    files = list(directory.glob("*.batch*")) if directory.is_dir() else []
    size = sum(f.stat().st_size for f in files)
    print(f"spool:       {directory} ({len(files)} undelivered batches, {size} bytes)")
    print("\nready: init() will use this configuration. Run `sentry-logger test` to check the server accepts it.")
    return 1 if problems else 0


_DEFAULTS = {"environment": "- (defaults to the API key's label)", "service": "- (defaults to the script name)"}

COMMANDS: dict[str, tuple[Command, str, Callable[[argparse.ArgumentParser], None]]] = {
    "init": (cmd_init, "link this terminal to your account in the browser and save the API key to the config file",
             _init_arguments),
    "test": (cmd_test, "send a test record and report success or the exact problem", _test_arguments),
    "status": (cmd_status, "show the configuration in effect and where each value comes from",
               _add_config_arguments),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentry-logger", description="sentry-logger Python SDK tools")
    parser.add_argument("--version", action="version", version=f"sentry-logger {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (func, help_text, configure) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        configure(command)
        command.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sentry-logger`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
