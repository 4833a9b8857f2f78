"""The live session page, its JSON API and staff pages: `path("live/", include("live.urls"))`."""

from __future__ import annotations

from django.urls import path, re_path

from live.web import api, holders, metrics, pitfalls, staff, views

app_name = "live"

urlpatterns = [
    path("", views.page, name="page"),
    path("keys/", views.set_key, name="set-key"),
    path("keys/delete/", views.delete_key, name="delete-key"),
    path("clear/", views.clear, name="clear"),
    path("flush/", views.flush, name="flush"),
    path("cycle/", views.cycle, name="cycle"),
    path("expiry/", views.expiry, name="expiry"),
    path("undo/", views.undo, name="undo"),
    path("pitfalls/not-json/", pitfalls.not_json, name="pitfall-not-json"),
    path("pitfalls/cart/", pitfalls.start_cart, name="pitfall-cart"),
    path("pitfalls/append/", pitfalls.append, name="pitfall-append"),
    path("pitfalls/default/", pitfalls.default, name="pitfall-default"),
    path("metrics/", metrics.page, name="metrics"),
    path("staff/sessions/", staff.sessions, name="staff-sessions"),
    path("staff/sessions/<str:digest>/", staff.watch, name="staff-watch"),
    path("staff/sessions/<str:digest>/end/", staff.end, name="staff-end"),
    path("my-sessions/", holders.my_sessions, name="my-sessions"),
    path("my-sessions/end-others/", holders.end_others, name="my-sessions-end-others"),
    path("my-sessions/<str:digest>/end/", holders.end_mine, name="my-session-end"),
    path("api/session", api.session, name="api-session"),
    path("api/session/flush", api.flush, name="api-flush"),
    path("api/session/cycle", api.cycle, name="api-cycle"),
    # (?s) and .* so that an empty key or one with a newline reaches the
    # validator and gets its reason, instead of a bare 404.
    re_path(r"^api/session/keys/(?P<key>(?s:.*))$", api.key, name="api-key"),
]
