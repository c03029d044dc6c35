"""Renders docs/configuration.md from the settings registry: `python -m server.config_doc > docs/configuration.md`."""

from __future__ import annotations

from server.settings import SETTINGS

__all__ = ["render"]

HEADER = """# Configuration

Every setting is read once at start-up from the environment, then from a `.env` file in the
working directory, then its default. This page is generated from the registry in
`server/settings.py` (`python -m server.config_doc > docs/configuration.md`); a test fails
when they differ.

| setting | default | what it does |
|---|---|---|
"""


def render() -> str:
    rows = []
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        text = s.help.replace("|", "\\|")
        rows.append(f"| `{s.name}` | {default} | {text} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
