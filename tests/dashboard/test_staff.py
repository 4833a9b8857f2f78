"""Staff pages refuse others with the reason and a way to sign in, logged in one line."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/staff/sessions/", "/staff/sessions/" + "a" * 64 + "/"])
async def test_staff_refusal_says_why_and_how_to_sign_in(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = await AsyncClient().get(path)
    assert response.status_code == 403
    body = response.content.decode()
    assert "Only staff users may see other sessions." in body
    assert 'href="/#account"' in body
    assert "ws-connect" not in body
    refusals = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(refusals) == 1 and refusals[0].exc_info is None


async def test_staff_refusal_names_the_signed_in_user() -> None:
    user = await get_user_model().objects.acreate_user("dora", password="pw")
    client = AsyncClient()
    await client.aforce_login(user)
    response = await client.get("/staff/sessions/")
    assert response.status_code == 403
    assert "<strong>dora</strong>" in response.content.decode()
