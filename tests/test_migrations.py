"""The live app's migrations keep every timeline entry, upgrading and downgrading."""

from __future__ import annotations

import pytest

from live.sessions import connections, timeline
from tests.helpers import create_row, merge_row

pytestmark = pytest.mark.django_db(transaction=True)


def migrate_live(target: str | None) -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("live", target)] if target else executor.loader.graph.leaf_nodes())


def test_the_timeline_is_one_btree_on_sqlite_and_keeps_its_entries_both_ways():
    from django.db import connection

    def table() -> tuple[str, list[tuple[object, ...]]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = 'live_livechange'")
            definition = cursor.fetchone()[0]
            cursor.execute("SELECT digest, version, source FROM live_livechange ORDER BY version")
            return definition, cursor.fetchall()

    assert connection.vendor == "sqlite"
    digest = create_row(a=1)
    merge_row(digest, sets={"a": 2})
    merge_row(digest, sets={"a": 3})
    definition, kept = table()
    assert definition.endswith("WITHOUT ROWID") and [v for _, v, _ in kept] == [1, 2]
    try:
        migrate_live("0002_leaner_writes")
        definition, entries = table()
        assert "WITHOUT ROWID" not in definition and entries == kept
    finally:
        migrate_live(None)
    definition, entries = table()
    assert definition.endswith("WITHOUT ROWID") and entries == kept
    assert [e["version"] for e in connections.call(timeline.history, digest)] == [2, 1]


def test_upgrade_keeps_every_timeline_entry():
    # The timeline moved to a table keyed by (digest, version) in 0002; the
    # upgrade copies what the old table held, and the downgrade copies it back.
    from django.db import connection

    def entries() -> list[tuple[object, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT digest, version, source FROM live_livechange ORDER BY digest, version"
            )
            return cursor.fetchall()

    old = [("a" * 64, v, f"POST /{v}") for v in range(3)] + [("b" * 64, 7, "code")]
    migrate_live("0001_initial")
    try:
        with connection.cursor() as cursor:
            for digest, version, source in old:
                cursor.execute(
                    "INSERT INTO live_livechange (digest, version, ts, source, changes)"
                    " VALUES (%s, %s, 1.0, %s, '[]')",
                    (digest, version, source),
                )
        migrate_live("0002_leaner_writes")
        assert entries() == old
        migrate_live("0001_initial")
        assert entries() == old
    finally:
        migrate_live(None)
