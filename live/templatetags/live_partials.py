"""`{% partialdef %}`: Django's own on 6.x, django-template-partials' on 5.2."""

from __future__ import annotations

import django
from django import template

register: template.Library
if django.VERSION >= (6, 0):
    # Built in: the tags need no library, and `page.html#name` loads without a wrapper.
    register = template.Library()
else:
    from template_partials.templatetags import partials

    register = partials.register

__all__ = ["register"]
