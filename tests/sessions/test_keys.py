"""The digest every request computes from the session key: Django's salted HMAC."""

from __future__ import annotations

from django.test import override_settings
from django.utils.crypto import salted_hmac

from live.sessions.keys import digest


def test_digest_is_djangos_salted_hmac_and_follows_the_secret():
    key = "397tmjimvd4xvpcoum84gjs28ml00rny"
    expected = salted_hmac("live.keys.digest", key, algorithm="sha256").hexdigest()
    assert digest(key) == expected
    with override_settings(SECRET_KEY="another-secret-" + "x" * 40):
        other = digest(key)
        assert other == salted_hmac("live.keys.digest", key, algorithm="sha256").hexdigest()
    assert other != expected
