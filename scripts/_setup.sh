# Sourced by scripts/run and scripts/test: create .venv and install the server, the SDK
# (editable) and, with SETUP_TEST=1, the test tools. Re-runs only when a pyproject, setup.py or the C
# sources changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PY" -m venv .venv
fi
# The C sources too: the install compiles them (server/_c/).
stamp=".venv/.installed-$(cat pyproject.toml setup.py sdk/pyproject.toml server/_c/* | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "==> installing sentry-logger (server, dashboard, SDK) into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test]" -e ./sdk
    rm -f .venv/.installed-*
    touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
# The dashboard's frontend build needs bun. Reflex's own installer downloads it from outside
# the package registries, which does not work here: install it from the npm registry into
# .tools/ instead, and keep Reflex from reaching out (telemetry, version check, probes).
BUN_VERSION=1.4.5
if [ ! -x .tools/node_modules/.bin/bun ] || [ "$(.tools/node_modules/.bin/bun --version 2>/dev/null)" != "$BUN_VERSION" ]; then
    if command -v npm >/dev/null; then
        echo "==> installing bun $BUN_VERSION from the npm registry into .tools/"
        npm install --silent --no-fund --no-audit --prefix .tools "bun@$BUN_VERSION" >/dev/null \
            || echo "warning: could not install bun; the dashboard cannot be built (--no-dashboard still works)"
    else
        echo "warning: npm not found; the dashboard cannot be built (install Node.js, or run with --no-dashboard)"
    fi
fi
export REFLEX_BUN_PATH="$ROOT/.tools/node_modules/.bin/bun"
export REFLEX_TELEMETRY_ENABLED=false REFLEX_CHECK_LATEST_VERSION=0 REFLEX_HTTP_CLIENT_BIND_ADDRESS=0.0.0.0
if [ -z "${NPM_CONFIG_REGISTRY:-}" ] && command -v npm >/dev/null; then
    NPM_CONFIG_REGISTRY="$(npm config get registry)"
    export NPM_CONFIG_REGISTRY
fi
