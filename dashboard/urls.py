from __future__ import annotations

from django.urls import path, re_path

from dashboard import api, demos, views

urlpatterns = [
    path("", views.page, name="page"),
    path("keys/", views.set_key, name="set-key"),
    path("keys/delete/", views.delete_key, name="delete-key"),
    path("clear/", views.clear, name="clear"),
    path("flush/", views.flush, name="flush"),
    path("cycle/", views.cycle, name="cycle"),
    path("expiry/", views.expiry, name="expiry"),
    path("color/", demos.color, name="color"),
    path("api/session", api.session, name="api-session"),
    path("api/session/flush", api.flush, name="api-flush"),
    path("api/session/cycle", api.cycle, name="api-cycle"),
    # (?s) and .* so that an empty key or one with a newline reaches the
    # validator and gets its reason, instead of a bare 404.
    re_path(r"^api/session/keys/(?P<key>(?s:.*))$", api.key, name="api-key"),
]
