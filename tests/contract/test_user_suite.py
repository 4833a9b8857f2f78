"""A test suite of the kind a Django project has, run unchanged on live.engine.

django.test.TestCase wraps each test in a transaction on the test thread's
connection; the engine must read and write through it, from sync and async
views alike, or a login does not stick and the database stays locked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.contrib.auth import alogin, get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, TestCase, override_settings
from django.urls import path


def sync_cart(request: HttpRequest) -> JsonResponse:
    cart = request.session.get("cart", [])
    if request.method == "POST":
        cart = [*cart, request.POST["item"]]
        request.session["cart"] = cart
    return JsonResponse({"cart": cart})


async def async_put(request: HttpRequest, key: str) -> JsonResponse:
    await request.session.aset(key, request.GET.get("value", ""))
    return JsonResponse({"keys": sorted(await request.session.akeys())})


async def async_login(request: HttpRequest) -> HttpResponse:
    user = await get_user_model().objects.aget(username=request.GET["username"])
    await alogin(request, user)
    return HttpResponse("in")


@login_required
def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username())


async def async_whoami(request: HttpRequest) -> HttpResponse:
    user = await request.auser()
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


urlpatterns = [
    path("cart/", sync_cart),
    path("put/<str:key>/", async_put),
    path("login/", async_login),
    path("whoami/", whoami),
    path("async-whoami/", async_whoami),
]

SETTINGS: dict[str, Any] = {
    "ROOT_URLCONF": __name__,
    "SESSION_ENGINE": "live.engine",
    # The engine's defaults, as a project that installs it has them.
    "LIVE_SESSIONS": {},
    "LOGIN_URL": "/login/",
    "MIDDLEWARE": [
        "live.middleware.LiveSessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
}


@override_settings(**SETTINGS)
class UserSuiteTests(TestCase):
    alice: Any

    @classmethod
    def setUpTestData(cls) -> None:
        cls.alice = get_user_model().objects.create_user("alice", password="secret")

    def test_sync_view_keeps_a_cart_across_requests(self) -> None:
        self.client.post("/cart/", {"item": "apple"})
        response = self.client.post("/cart/", {"item": "pear"})
        assert response.json() == {"cart": ["apple", "pear"]}
        assert self.client.session["cart"] == ["apple", "pear"]

    def test_client_login_sticks(self) -> None:
        assert self.client.login(username="alice", password="secret")
        assert self.client.get("/whoami/").content == b"alice"

    def test_force_login_sticks_for_async_views(self) -> None:
        self.client.force_login(self.alice)
        assert self.client.get("/async-whoami/").content == b"alice"

    def test_async_login_view_then_sync_view(self) -> None:
        assert self.client.get("/login/?username=alice").content == b"in"
        assert self.client.get("/whoami/").content == b"alice"

    def test_logout_ends_the_session(self) -> None:
        self.client.force_login(self.alice)
        self.client.logout()
        assert self.client.get("/async-whoami/").content == b"anonymous"

    async def test_async_client_writes_and_reads(self) -> None:
        client = AsyncClient()
        await client.get("/put/a/?value=1")
        response = await client.get("/put/b/?value=2")
        assert response.json() == {"keys": ["a", "b"]}

    async def test_concurrent_writes_in_one_test_all_stay(self) -> None:
        client = AsyncClient()
        await client.get("/put/first/")
        keys = [f"k{i}" for i in range(8)]
        await asyncio.gather(*(client.get(f"/put/{key}/") for key in keys))
        response = await client.get("/put/last/")
        assert response.json() == {"keys": sorted(["first", "last", *keys])}
