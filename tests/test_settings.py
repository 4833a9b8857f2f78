"""Settings read from the environment once: what a deployment gets for what it sets."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from typing import Any

from tests.conftest import ROOT, server_env

NAMES = ("SECURE_PROXY_SSL_HEADER", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT")


def settings_with(names: tuple[str, ...] = NAMES, **env: str) -> dict[str, object]:
    script = (
        "import json, asgi_config.settings as s; print(json.dumps({name: getattr(s, name, None)"
        f" for name in {names!r}}}, default=str))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DJANGO_") and k not in ("REDIS_URL", "CHANNELS_REDIS_URL")
    }
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


def test_settings_pick_the_session_engine_by_store() -> None:
    def engine(**env: str) -> object:
        return settings_with(("SESSION_ENGINE",), **env)["SESSION_ENGINE"]

    assert engine() == "live.engine"
    assert engine(SESSION_STORE="redis") == "live.redis_engine"
    assert engine(SESSION_STORE="django-cached_db") == "django.contrib.sessions.backends.cached_db"


def test_settings_keep_the_channel_layer_on_a_single_redis_beside_a_cluster() -> None:
    names = ("CHANNELS_REDIS_URL", "CHANNEL_LAYERS")
    single = settings_with(names, REDIS_URL="redis://r:6379/0")
    assert single["CHANNELS_REDIS_URL"] == "redis://r:6379/0"
    cluster = settings_with(names, REDIS_URL="redis+cluster://c:7000")
    assert cluster["CHANNELS_REDIS_URL"] is None
    both = settings_with(
        names, REDIS_URL="redis+cluster://c:7000", CHANNELS_REDIS_URL="redis://r:6379/0"
    )
    layer: Any = both["CHANNEL_LAYERS"]
    assert layer["default"]["CONFIG"]["hosts"][0]["address"] == "redis://r:6379/0"


def test_production_settings_pass_the_deploy_check():
    env = server_env(ROOT / "unused")
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="example.com",
    )
    env.pop("DATABASE_URL")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
            "s.SESSION_COOKIE_SAMESITE, s.DEBUG)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.stdout.split() == ["True", "True", "True", "Lax", "False"], shown.stderr
