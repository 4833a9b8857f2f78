"""The pitfalls that Django's session docs warn of, tried live against the visitor's session."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from live.web.rendering import PAGE


def _result(request: HttpRequest, code: str, outcome: str, status: int = 200) -> HttpResponse:
    context = {"pitfall": {"code": code, "outcome": outcome}}
    return render(request, f"{PAGE}#pitfall-result", context, status=status)


@require_POST
async def not_json(request: HttpRequest) -> HttpResponse:
    code = 'await request.session.aset("when", datetime.now())\nawait request.session.asave()'
    await request.session.aset("when", datetime.now(UTC))
    try:
        await request.session.asave()
    except TypeError as exc:
        # Take the value back out, or the middleware would fail the same way.
        await request.session.apop("when")
        return _result(request, code, f"TypeError: {exc}. Nothing was saved.")
    return _result(request, code, "Saved (this engine accepted a non-JSON value).")


@require_POST
async def start_cart(request: HttpRequest) -> HttpResponse:
    code = 'await request.session.aset("cart", ["apple"])'
    await request.session.aset("cart", ["apple"])
    return _result(request, code, 'Saved: aset() marks the session modified. cart is ["apple"].')


@require_POST
async def append(request: HttpRequest) -> HttpResponse:
    mark = request.POST.get("modified") == "1"
    cart = await request.session.aget("cart")
    if not isinstance(cart, list):
        # 422, htmx's "refused, here is why": the answer takes the result's
        # place, where django-htmx's debug handler would replace the page on a 400.
        status = 422 if request.headers.get("HX-Request") else 400
        return _result(request, "", "Start the cart first: there is no list at 'cart'.", status)
    cart.append("pear")
    code = 'cart = await request.session.aget("cart")\ncart.append("pear")'
    if mark:
        request.session.modified = True
        code += "\nrequest.session.modified = True"
        outcome = "Saved: the table shows the new item in every tab."
    else:
        outcome = (
            "Not saved: the list changed in memory only. Django saves when the session is "
            "marked modified, and mutating a nested value does not mark it; the table stays."
        )
    return _result(request, code, outcome)


@require_POST
async def default(request: HttpRequest) -> HttpResponse:
    fallback = await request.session.aget("no_such_key", "fallback")
    try:
        request.session["no_such_key"]
        missing = "found"
    except KeyError:
        missing = "KeyError: 'no_such_key'"
    code = (
        'await request.session.aget("no_such_key", "fallback")  # -> "fallback"\n'
        'request.session["no_such_key"]  # raises'
    )
    return _result(request, code, f'aget() returned "{fallback}"; indexing raised {missing}.')
