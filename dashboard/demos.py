"""Plain views that know nothing of the dashboard; their session writes still reach it live."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


async def color(request: HttpRequest) -> HttpResponse:
    await request.session.aset("favorite_color", "green")
    return HttpResponse("Your favorite color is green.")
