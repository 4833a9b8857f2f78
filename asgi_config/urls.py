from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    # Browsers ask for /favicon.ico on pages that name no icon (the plain demo view's).
    path("favicon.ico", RedirectView.as_view(url=static("live/favicon.svg"), permanent=True)),
    path("", include("dashboard.urls")),
]
