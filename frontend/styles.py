"""Design tokens: every colour, size and spacing the dashboard uses comes from here."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ACCENT",
    "BORDER",
    "FONT_MONO",
    "GRAY",
    "HEALTH_COLORS",
    "LEVEL_COLORS",
    "MUTED",
    "PAGE_BG",
    "RADIUS",
    "SIDEBAR_WIDTH",
    "SPACE",
    "STATUS_COLORS",
    "STATUS_SCHEMES",
    "SURFACE",
    "base_style",
    "card",
    "mono",
]

ACCENT = "indigo"
GRAY = "slate"
PAGE_BG = "var(--gray-2)"
SURFACE = "var(--color-panel-solid)"
BORDER = "1px solid var(--gray-5)"
MUTED = "var(--gray-11)"
RADIUS = "8px"
SIDEBAR_WIDTH = "260px"
FONT_MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"

# Spacing scale (CSS lengths), used for padding and gaps.
SPACE = {"xs": "4px", "sm": "8px", "md": "12px", "lg": "16px", "xl": "24px", "xxl": "32px"}

# Radix colour names per log level (badges) and per health state (sidebar dots).
LEVEL_COLORS = {"DEBUG": "gray", "INFO": "blue", "WARNING": "amber", "ERROR": "red", "CRITICAL": "crimson"}
HEALTH_COLORS = {"ok": "var(--green-9)", "errors": "var(--amber-9)", "silent": "var(--gray-8)"}
# Health view statuses (server/health_status.py): Radix colour scheme and CSS colour.
STATUS_SCHEMES = {"healthy": "green", "degraded": "amber", "failing": "red", "silent": "gray"}
STATUS_COLORS = {"healthy": "var(--green-9)", "degraded": "var(--amber-9)", "failing": "var(--red-9)", "silent": "var(--gray-8)"}

base_style: dict[str, Any] = {
    "font_family": "Inter, system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
    "background_color": PAGE_BG,
}

card: dict[str, Any] = {
    "background": SURFACE,
    "border": BORDER,
    "border_radius": RADIUS,
    "padding": SPACE["lg"],
    "width": "100%",
}

mono: dict[str, Any] = {"font_family": FONT_MONO, "font_size": "12px"}
