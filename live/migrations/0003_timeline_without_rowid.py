"""On SQLite, the timeline becomes a WITHOUT ROWID table: one b-tree instead of two.

Keyed by (digest, version), a rowid table keeps every entry twice over: in
the table under a hidden rowid, and in the index of its primary key. Each
write adds an entry, so each commit wrote a page of both; clustered on its
key, the table takes an entry in one page (docs/performance.md). Django cannot
declare this, so the table is rebuilt under the same definition plus the
clause, and every entry is copied. Other databases keep their table as it
is. Should a later migration of this model make Django remake the table on
SQLite, it comes back as a rowid table: slower by a page a write, no less right.
"""

from django.db import migrations

TABLE = "live_livechange"
CLAUSE = "WITHOUT ROWID"


def _rebuild(schema_editor, without_rowid: bool) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [TABLE])
        definition = cursor.fetchone()[0].rstrip()
        if definition.upper().endswith(CLAUSE):
            definition = definition[: -len(CLAUSE)].rstrip()
        if without_rowid:
            definition += f" {CLAUSE}"
        rebuilt = definition.replace(f'"{TABLE}"', f'"{TABLE}_rebuilt"', 1)
        cursor.execute(rebuilt)
        cursor.execute(f'INSERT INTO "{TABLE}_rebuilt" SELECT * FROM "{TABLE}"')
        cursor.execute(f'DROP TABLE "{TABLE}"')
        cursor.execute(f'ALTER TABLE "{TABLE}_rebuilt" RENAME TO "{TABLE}"')


def forwards(apps, schema_editor) -> None:
    _rebuild(schema_editor, without_rowid=True)


def backwards(apps, schema_editor) -> None:
    _rebuild(schema_editor, without_rowid=False)


class Migration(migrations.Migration):
    dependencies = [("live", "0002_leaner_writes")]

    operations = [migrations.RunPython(forwards, backwards)]
