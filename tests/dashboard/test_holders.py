"""Who holds which session: a user's own list, ending sessions, and refusals that end nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient
from django.urls import reverse

from live.conf import session_store
from live.sessions.client import AGENT, IP, STARTED, device
from live.sessions.keys import digest
from tests.helpers import HTMX, closed_with, communicator, key_of, make_user, receive, token

pytestmark = pytest.mark.django_db(transaction=True)

AGENT_TEXT = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"


class Browser(AsyncClient):
    """A client that sends its browser's headers (a user agent, a proxy's) with every request."""

    def __init__(self, sent: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent = sent

    def generic(self, *args: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().generic(*args, headers={**self.sent, **(headers or {})}, **kwargs)


async def signed_in(username: str, csrf: bool = False, **headers: str) -> AsyncClient:
    """A browser that opened the page and signed in through the site's own form."""
    client = Browser({"User-Agent": AGENT_TEXT, **headers}, enforce_csrf_checks=csrf)
    assert (await client.get(reverse("live:page"))).status_code == 200
    form = {"username": username, "password": username}
    answer = await client.post(reverse("login"), form, headers=token(client))
    assert answer.status_code in (200, 302)
    return client


async def stored(client: AsyncClient) -> dict[str, Any] | None:
    snapshot = await session_store().aread(digest(key_of(client)))
    return None if snapshot is None else snapshot.data


def end_url(client: AsyncClient) -> str:
    return reverse("live:my-session-end", args=[digest(key_of(client))])


async def test_my_sessions_lists_the_users_sessions_and_marks_this_one() -> None:
    await make_user("demo")
    await make_user("other")
    first, second = await signed_in("demo"), await signed_in("demo")
    stranger = await signed_in("other")
    page = (await first.get(reverse("live:my-sessions"))).content.decode()
    assert page.count("data-my-session=") == 2
    this = await session_store().aread(digest(key_of(first)))
    assert f'data-my-session="{this.masked_key}" data-this-session' in page
    assert digest(key_of(second)) in page and digest(key_of(stranger)) not in page
    # Recording is off by default: the start is kept, the client is not.
    data = await stored(first)
    assert data is not None and isinstance(data[STARTED], float)
    assert AGENT not in data and IP not in data
    assert "not recorded" in page


async def test_my_sessions_anonymous_is_asked_to_sign_in() -> None:
    answer = await AsyncClient().get(reverse("live:my-sessions"))
    assert answer.status_code == 200 and "Sign in" in answer.content.decode()


async def test_end_mine_ends_the_other_browser_and_tells_its_tabs() -> None:
    await make_user("demo")
    first, second = await signed_in("demo"), await signed_in("demo")
    tab = communicator(key_of(second))
    assert (await tab.connect())[0]
    assert (await receive(tab))["type"] == "session.snapshot"
    answer = await first.post(end_url(second), headers=HTMX)
    assert answer.status_code == 200
    assert "ended." in answer.content.decode()
    assert await stored(second) is None and await stored(first) is not None
    assert await receive(tab) == {"type": "session.ended"}
    await closed_with(tab, 4307)


async def test_end_all_but_this_one() -> None:
    await make_user("demo")
    first, second, third = [await signed_in("demo") for _ in range(3)]
    answer = await first.post(reverse("live:my-sessions-end-others"))
    assert "Ended 2 other sessions." in answer.content.decode()
    assert await stored(second) is None and await stored(third) is None
    assert await stored(first) is not None


async def test_end_mine_refuses_someone_elses_session_and_ends_nothing() -> None:
    await make_user("demo")
    await make_user("other")
    mine, theirs = await signed_in("demo"), await signed_in("other")
    answer = await mine.post(end_url(theirs))
    assert answer.status_code == 404
    assert "No session of yours has that id." in answer.content.decode()
    assert (await mine.post(end_url(theirs), headers=HTMX)).status_code == 422
    assert await stored(theirs) is not None


async def test_end_mine_refuses_anonymous_and_ends_nothing() -> None:
    await make_user("demo")
    owner = await signed_in("demo")
    stranger = AsyncClient()
    assert (await stranger.post(end_url(owner))).status_code == 403
    assert (await stranger.post(reverse("live:my-sessions-end-others"))).status_code == 403
    assert await stored(owner) is not None


async def test_ending_without_csrf_is_refused_and_ends_nothing() -> None:
    await make_user("demo")
    await make_user("boss", staff=True)
    first, second = await signed_in("demo", csrf=True), await signed_in("demo")
    staff = await signed_in("boss", csrf=True)
    assert (await first.post(end_url(second))).status_code == 403
    assert (await first.post(reverse("live:my-sessions-end-others"))).status_code == 403
    staff_end = reverse("live:staff-end", args=[digest(key_of(second))])
    assert (await staff.post(staff_end)).status_code == 403
    assert await stored(second) is not None
    # With the token, the same request ends it.
    assert (await staff.post(staff_end, headers=token(staff))).status_code == 200
    assert await stored(second) is None


async def test_staff_end_refuses_non_staff_and_ends_nothing() -> None:
    await make_user("demo")
    await make_user("other")
    victim, other = await signed_in("demo"), await signed_in("other")
    answer = await other.post(reverse("live:staff-end", args=[digest(key_of(victim))]))
    assert answer.status_code == 403
    assert await stored(victim) is not None


async def test_staff_end_answers_the_list_in_place_and_tells_the_tabs() -> None:
    await make_user("demo")
    await make_user("boss", staff=True)
    victim, staff = await signed_in("demo"), await signed_in("boss")
    tab = communicator(key_of(victim))
    assert (await tab.connect())[0]
    assert (await receive(tab))["type"] == "session.snapshot"
    masked = (await session_store().aread(digest(key_of(victim)))).masked_key  # type: ignore[union-attr]
    url = reverse("live:staff-end", args=[digest(key_of(victim))])
    answer = await staff.post(url, headers=HTMX)
    body = answer.content.decode()
    assert answer.status_code == 200
    assert 'id="session-list"' in body and f"Session {masked} ended." in body
    assert 'hx-swap-oob="true"' in body
    assert await receive(tab) == {"type": "session.ended"}
    await closed_with(tab, 4307)
    again = await staff.post(url, headers=HTMX)
    assert again.status_code == 422


async def test_staff_list_shows_users_and_filters() -> None:
    await make_user("demo")
    await make_user("other")
    await make_user("boss", staff=True)
    await signed_in("demo")
    await signed_in("other")
    staff = await signed_in("boss")
    page = (await staff.get(reverse("live:staff-sessions"))).content.decode()
    assert 'data-session-user="demo"' in page and 'data-session-user="other"' in page
    only = (await staff.get(reverse("live:staff-sessions") + "?user=demo")).content.decode()
    assert 'data-session-user="demo"' in only and 'data-session-user="other"' not in only
    assert "?user=demo" in only  # the socket keeps the filter
    found = (await staff.get(reverse("live:staff-sessions") + "?q=OTH")).content.decode()
    assert 'data-session-user="other"' in found and 'data-session-user="demo"' not in found


async def test_record_client_keeps_agent_and_proxy_address_then_drops_them(settings: Any) -> None:
    settings.LIVE_SESSIONS = {
        **settings.LIVE_SESSIONS,
        "RECORD_CLIENT": True,
        "CLIENT_IP_HEADER": "HTTP_X_FORWARDED_FOR",
    }
    await make_user("demo")
    client = await signed_in("demo", **{"X-Forwarded-For": "10.9.8.7, 203.0.113.5"})
    data = await stored(client)
    assert data is not None
    assert data[AGENT] == AGENT_TEXT and data[IP] == "203.0.113.5"
    page = (await client.get(reverse("live:my-sessions"))).content.decode()
    assert "Firefox on Linux" in page and "203.0.113.5" in page
    # Turned off: the next request that reads the session drops them.
    settings.LIVE_SESSIONS = {**settings.LIVE_SESSIONS, "RECORD_CLIENT": False}
    await client.get(reverse("live:page"))
    data = await stored(client)
    assert data is not None and AGENT not in data and IP not in data and STARTED in data


async def test_record_client_without_a_header_setting_ignores_forwarded_for(settings: Any) -> None:
    settings.LIVE_SESSIONS = {**settings.LIVE_SESSIONS, "RECORD_CLIENT": True}
    await make_user("demo")
    client = await signed_in("demo", **{"X-Forwarded-For": "198.51.100.1"})
    data = await stored(client)
    assert data is not None and data[IP] == "127.0.0.1"


async def test_staff_watching_never_see_the_ip(settings: Any) -> None:
    settings.LIVE_SESSIONS = {**settings.LIVE_SESSIONS, "RECORD_CLIENT": True}
    await make_user("demo")
    await make_user("boss", staff=True)
    victim, staff = await signed_in("demo"), await signed_in("boss")
    page = await staff.get(reverse("live:staff-watch", args=[digest(key_of(victim))]))
    assert 'data-reserved-key="_live_ip"' in page.content.decode()
    assert "127.0.0.1" not in page.content.decode()


def test_device_describes_common_agents() -> None:
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/131.0 Safari/537.36"
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Safari/604.1"
    assert device(chrome) == "Chrome on Linux"
    assert device(iphone) == "Safari on iOS"
    assert device(AGENT_TEXT) == "Firefox on Linux"
    assert device("") == ""


async def test_my_sessions_page_follows_a_login_and_a_logout_elsewhere() -> None:
    await make_user("demo")
    first = await signed_in("demo")
    page = communicator(key_of(first), json_mode=False, path="/ws/my-sessions/")
    connected, _ = await page.connect()
    assert connected
    assert (await page.receive_from(timeout=3)).count("data-my-session=") == 1
    second = await signed_in("demo")
    # Each change to any session refreshes the list; the login's leaves two rows.
    listed = await page.receive_from(timeout=3)
    while listed.count("data-my-session=") != 2:
        listed = await page.receive_from(timeout=3)
    assert digest(key_of(second)) in listed
    await second.post(reverse("logout"), headers=token(second))
    listed = await page.receive_from(timeout=3)
    while listed.count("data-my-session=") != 1:
        listed = await page.receive_from(timeout=3)
    assert digest(key_of(second)) not in listed
    await page.disconnect()


async def test_my_sessions_socket_refuses_anonymous() -> None:
    page = communicator(None, json_mode=False, path="/ws/my-sessions/")
    connected, code = await page.connect()
    assert not connected and code == 4403
