"""Sign in, write through the JSON API, sign out and in again: the session's key changes
(login cycles it, logout flushes it) and the tabs follow the user's cookie."""

from __future__ import annotations

from live.loadtest.scenario import Scenario, between, task

# The site's demo account (manage.py demo_user).
USERNAME = PASSWORD = "demo"


class Login(Scenario):
    wait = between(0.0, 0.05)

    async def on_start(self) -> None:
        await self.log_in()

    async def log_in(self) -> None:
        form = {"username": USERNAME, "password": PASSWORD}
        # A 302 to the page: alogin cycled the key and rotated the CSRF token.
        await self.client.post("/login/submit/", data=form, name="log in")

    @task(8)
    async def write(self) -> None:
        key = f"note{self.rng.randrange(4)}"
        value = {"user": self.index, "n": self.rng.randrange(1_000_000)}
        await self.client.put(
            f"/api/session/keys/{key}", json=value, name="PUT note", writes={key: value}
        )

    @task
    async def log_out_and_in(self) -> None:
        # alogout flushes: the session and its cookie are gone, and every key with them.
        await self.client.post("/logout/", name="log out", clears=True)
        await self.log_in()
