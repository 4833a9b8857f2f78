"""Settings read from the environment once: what a deployment gets for what it sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings_with(**env: str) -> dict[str, object]:
    script = (
        "import json, asgi_config.settings as s; print(json.dumps({name: getattr(s, name, None)"
        " for name in ('SECURE_PROXY_SSL_HEADER', 'CSRF_TRUSTED_ORIGINS', 'SECURE_SSL_REDIRECT')}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, "DJANGO_SECRET_KEY": "x" * 50, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


def test_settings_trust_no_forwarded_proto_by_default() -> None:
    assert settings_with(DJANGO_DEBUG="0")["SECURE_PROXY_SSL_HEADER"] is None


def test_settings_trust_forwarded_proto_behind_a_proxy() -> None:
    found = settings_with(DJANGO_DEBUG="0", DJANGO_BEHIND_PROXY="1")
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_settings_read_trusted_origins() -> None:
    found = settings_with(DJANGO_TRUSTED_ORIGINS="https://a.example, https://b.example")
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://a.example", "https://b.example"]
