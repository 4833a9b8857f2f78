"""A cart kept in a list: appending saves only because the view sets `modified = True`.

The site's pitfall views: POST /pitfalls/cart/ stores ["apple"]; POST
/pitfalls/append/ appends "pear" to the list in place, and with modified=1
marks the session modified so that Django saves it. Send modified=0 to see
the pitfall itself: the declared cart is then reported as a lost write.
"""

from __future__ import annotations

from live.loadtest.scenario import Scenario, between, task


class Cart(Scenario):
    wait = between(0.0, 0.05)

    async def on_start(self) -> None:
        await self.start_cart()

    @task
    async def start_cart(self) -> None:
        answer = await self.client.post("/pitfalls/cart/", writes={"cart": ["apple"]})
        if answer.ok:
            self.cart = ["apple"]

    @task(4)
    async def add_pear(self) -> None:
        cart = [*self.cart, "pear"]
        answer = await self.client.post(
            "/pitfalls/append/", data={"modified": "1"}, writes={"cart": cart}
        )
        if answer.ok:
            self.cart = cart
