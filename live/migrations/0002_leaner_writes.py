"""Fewer pages per write: no index on the expiry, a timeline keyed by (digest, version).

Django cannot turn an id into a composite key in place, so the timeline moves
to a new table under the same model name; every entry is copied over.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("live", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="livesession", name="expires_at", field=models.FloatField()
        ),
        migrations.RenameModel("LiveChange", "LiveChangeBefore"),
        migrations.CreateModel(
            name="LiveChange",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "digest",
                        "version",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("digest", models.CharField(max_length=64)),
                ("version", models.BigIntegerField()),
                ("ts", models.FloatField()),
                ("source", models.CharField(max_length=200)),
                ("changes", models.TextField()),
            ],
        ),
        # Versions are unique per session; should an old table hold a duplicate
        # anyway, the first copy is kept rather than failing the upgrade.
        migrations.RunSQL(
            "INSERT INTO live_livechange (digest, version, ts, source, changes)"
            # WHERE true: SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT.
            " SELECT digest, version, ts, source, changes FROM live_livechangebefore"
            " WHERE true ORDER BY id ON CONFLICT DO NOTHING",
            "INSERT INTO live_livechangebefore (digest, version, ts, source, changes)"
            " SELECT digest, version, ts, source, changes FROM live_livechange"
            " ORDER BY digest, version",
        ),
        migrations.DeleteModel("LiveChangeBefore"),
    ]
