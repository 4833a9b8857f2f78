"""The pitfalls from Django's session docs, tried in any order, always answer in place."""

from __future__ import annotations

import pytest
from django.test import AsyncClient

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HX-Request": "true"}


async def client() -> AsyncClient:
    visitor = AsyncClient()
    await visitor.get("/")
    return visitor


async def test_pitfall_append_before_the_cart_says_why_in_place() -> None:
    visitor = await client()
    response = await visitor.post("/pitfalls/append/", headers=HTMX)
    # 422, not 400: django-htmx's debug handler would replace the whole page.
    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="pitfall-result"' in body and "Start the cart first" in body
    plain = await visitor.post("/pitfalls/append/")
    assert plain.status_code == 400


async def test_pitfall_append_without_modified_is_not_saved_and_with_it_is() -> None:
    visitor = await client()
    await visitor.post("/pitfalls/cart/", headers=HTMX)
    await visitor.post("/pitfalls/append/", headers=HTMX)
    assert (await visitor.get("/api/session")).json()["data"]["cart"] == ["apple"]
    await visitor.post("/pitfalls/append/", {"modified": "1"}, headers=HTMX)
    assert (await visitor.get("/api/session")).json()["data"]["cart"] == ["apple", "pear"]


async def test_pitfall_not_json_refuses_a_datetime_and_saves_nothing() -> None:
    visitor = await client()
    response = await visitor.post("/pitfalls/not-json/", headers=HTMX)
    assert response.status_code == 200
    assert "TypeError" in response.content.decode()
    assert "when" not in (await visitor.get("/api/session")).json()["data"]
