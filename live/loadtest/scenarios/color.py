"""A plain view that knows nothing of the live app: GET /color/ stores favorite_color."""

from __future__ import annotations

from live.loadtest.scenario import DELETED, Scenario, between, task


class Color(Scenario):
    wait = between(0.0, 0.05)
    picked = False

    @task(3)
    async def pick(self) -> None:
        answer = await self.client.get("/color/", writes={"favorite_color": "green"})
        self.picked = answer.ok

    @task
    async def forget(self) -> None:
        # Only what was picked: deleting a missing key answers 404. The next pick is
        # then a change again, which the tabs must receive.
        if self.picked:
            path = "/api/session/keys/favorite_color"
            await self.client.delete(path, name="forget color", writes={"favorite_color": DELETED})
            self.picked = False
