"""The dashboard app: `rx.App` with the server's Starlette API mounted in front of it.

One process, one port: the compiled pages, Reflex's state websocket, /api, /auth,
/ingest and the live tail all share an origin and the in-process hub. The Starlette
routes match first (there is none at `/`).
"""

from __future__ import annotations

import reflex as rx

from frontend import routes, runtime, styles
from frontend.components.one_time_key import HEAD_SCRIPT
from frontend.pages.device_link import DeviceLinkState, device_link_page
from frontend.pages.health import HealthState, health_page
from frontend.pages.home import HomeState, home_page
from frontend.pages.keys import KeysState, keys_page
from frontend.pages.logs import LogsState, logs_page
from frontend.pages.signin import SigninState, signin_page

app = rx.App(
    style=styles.base_style,
    head_components=[rx.script(HEAD_SCRIPT)],
    stylesheets=["/dashboard.css"],
    api_transformer=runtime.api_app(),
)
# Reflex's default overlay toasts a technical websocket error; layout.connection_notice says
# it in words instead.
app.app_wraps.pop((5, "Overlay"), None)
app.register_lifespan_task(runtime.lifespan)
runtime.set_reflex_app(app)

app.add_page(signin_page, route=routes.SIGNIN, title="Sign in · sentry-logger", on_load=SigninState.load)
app.add_page(home_page, route=routes.HOME, title="sentry-logger", on_load=HomeState.load)
app.add_page(logs_page, route=routes.APP_LOGS, title="Logs · sentry-logger", on_load=LogsState.load)
app.add_page(keys_page, route=routes.APP_KEYS, title="Keys · sentry-logger", on_load=KeysState.load)
app.add_page(health_page, route=routes.APP_HEALTH, title="Health · sentry-logger", on_load=HealthState.load)
app.add_page(device_link_page, route=routes.DEVICE_LINK, title="Link a terminal · sentry-logger",
             on_load=DeviceLinkState.load)
