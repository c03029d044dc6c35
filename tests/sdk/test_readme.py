"""The SDK README documents every option and every drop reason (like the server's settings registry)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sentry_logger import ClientOptions
from sentry_logger.report import DROP_REASONS

README = (Path(__file__).resolve().parents[2] / "sdk" / "README.md").read_text()


def test_every_option_is_in_the_options_table() -> None:
    for option in dataclasses.fields(ClientOptions):
        assert f"| `{option.name}` |" in README, option.name


def test_every_drop_reason_is_explained() -> None:
    for reason in DROP_REASONS:
        assert f"`{reason}`" in README, reason
