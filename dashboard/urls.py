"""The site: the live app at its root, and the views it watches logins and plain writes with."""

from __future__ import annotations

from django.urls import include, path

from dashboard import accounts, demos

urlpatterns = [
    path("login/", accounts.login_page, name="login-page"),
    path("login/submit/", accounts.login, name="login"),
    path("logout/", accounts.logout, name="logout"),
    path("color/", demos.color, name="color"),
    path("", include("live.urls")),
]
