from __future__ import annotations

from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "live"
    verbose_name = "Live sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from live import checks  # noqa: F401  (registers the system checks)
