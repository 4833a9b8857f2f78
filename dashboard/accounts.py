"""Log in and out with Django's auth, to watch what it does to the session live."""

from __future__ import annotations

from django.contrib.auth import aauthenticate, alogin, alogout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_POST

from live.web.validation import Invalid
from live.web.views import respond


@require_POST
async def login(request: HttpRequest) -> HttpResponse:
    username = request.POST.get("username", "")
    password = request.POST.get("password", "")

    async def run() -> str:
        user = await aauthenticate(request, username=username, password=password)
        if user is None:
            raise Invalid("That username and password do not match a user.", 400)
        # alogin cycles the session key (session fixation defence); open tabs follow it.
        await alogin(request, user)
        return "await alogin(request, user)  # cycles the key, stores _auth_user_id"

    return await respond(request, run)


@require_POST
async def logout(request: HttpRequest) -> HttpResponse:
    async def run() -> str:
        await alogout(request)
        return "await alogout(request)  # flushes: the session is deleted and its cookie with it"

    return await respond(request, run)


async def login_page(request: HttpRequest) -> HttpResponse:
    # Django's LOGIN_URL: the dashboard holds the login form.
    return HttpResponseRedirect("/#account")
