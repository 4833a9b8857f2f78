"""The table behind the live session engine."""

from __future__ import annotations

from django.db import models


class LiveSession(models.Model):
    """One session, stored under the digest of its key, with a version per change."""

    digest = models.CharField(primary_key=True, max_length=64)
    # A JSON object of the session's keys and values.
    data = models.TextField(default="{}")
    # A JSON object {key: version of its last set or delete}; deleted keys stay
    # as tombstones so that If-Match sees "deleted after your version".
    key_versions = models.TextField(default="{}")
    version = models.BigIntegerField(default=0)
    masked_key = models.CharField(max_length=16)
    # Epoch seconds, not datetimes: the store compares and writes them in raw
    # SQL on every request, the same way on SQLite and PostgreSQL. No index:
    # every write moves the expiry, and an index page rewritten per commit
    # costs every write more than the occasional clearsessions scan saves.
    expires_at = models.FloatField()
    # Epoch seconds of the last write, for the staff list's "last change".
    updated_at = models.FloatField(default=0.0)

    class Meta:
        verbose_name = "live session"

    def __str__(self) -> str:
        return self.masked_key


class LiveChange(models.Model):
    """One entry of a session's timeline: what changed at a version, and who changed it."""

    # One entry per version of a session. The key is also the timeline's order,
    # so an insert needs no counter; on SQLite the table is clustered on it
    # (WITHOUT ROWID, migration 0003), so an insert touches one b-tree page.
    pk = models.CompositePrimaryKey("digest", "version")
    digest = models.CharField(max_length=64)
    version = models.BigIntegerField()
    ts = models.FloatField()
    source = models.CharField(max_length=200)
    # A JSON list of {"op": "set"|"delete"|"cycle", "key", "value"?, "old"?}.
    changes = models.TextField()

    def __str__(self) -> str:
        return f"v{self.version} {self.source}"
