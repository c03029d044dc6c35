"""No operation answers 500, whatever its OpenAPI description lets a client send.

schemathesis generates requests from the server's own /openapi.json (types, bounds, missing
and extra fields, odd strings and numbers) and sends them to a live server on each database:
the API with a personal token, /ingest with the app's key. A fixed seed keeps runs alike. It
found, before this test existed, ids past 64 bits answering 500 and a timestamp of 1e308
seconds failing the ingest request.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import LiveApp

_CLI = Path(sys.executable).parent / "schemathesis"


def _fuzz(url: str, header: str, *paths: str, tmp: Path, examples: int) -> None:
    result = subprocess.run(
        [str(_CLI), "run", f"{url}/openapi.json", "-H", header, *paths, "--checks", "not_a_server_error",
         "--max-examples", str(examples), "--seed", "20261205", "--workers", "1", "--generation-database", "none",
         "--no-color", "--report-dir", str(tmp / "report")],
        capture_output=True, text=True, timeout=600, cwd=tmp, check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_no_operation_answers_500(live_server: LiveApp, tmp_path: Path) -> None:
    _fuzz(live_server.url, f"Authorization: Bearer {live_server.token}", "--exclude-path", "/ingest",
          tmp=tmp_path, examples=25)
    _fuzz(live_server.url, f"X-API-Key: {live_server.api_key}", "--include-path", "/ingest", tmp=tmp_path, examples=150)
