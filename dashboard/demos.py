"""Plain views that know nothing of the live app; their session writes still reach it live."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


async def color(request: HttpRequest) -> HttpResponse:
    await request.session.aset("favorite_color", "green")
    return render(request, "dashboard/color.html")
