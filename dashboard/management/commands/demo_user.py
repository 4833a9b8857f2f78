"""Create the demo accounts that the README's run command offers (debug only)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

ACCOUNTS = (("demo", False), ("staff", True))


class Command(BaseCommand):
    help = "Create the users demo/demo and staff/staff for trying logins (DEBUG only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: no demo users are created.")
            return
        User = get_user_model()
        for name, staff in ACCOUNTS:
            user, created = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
            if created:
                user.set_password(name)
                user.save()
        self.stdout.write("Demo users: demo/demo and staff/staff (staff sees every session).")
