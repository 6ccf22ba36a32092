"""PostgreSQL indexes for the admin's case-insensitive prefix search (UPPER(col) LIKE 'ABC%').

Django's istartswith / iexact compile to UPPER(col::text) LIKE/= UPPER(%s) on PostgreSQL; these
expression indexes with text_pattern_ops serve them, so a search over a million patients is a few
bitmap index scans. SQLite (the demo) does not need them and does not get them.
"""

from django.db import migrations

COLUMNS = ["last_name", "first_name", "email", "chart_number"]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS patient_search_{column}_idx "
            f"ON patients_patient (UPPER({column}::text) text_pattern_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS patient_search_{column}_idx")


class Migration(migrations.Migration):
    dependencies = [("patients", "0003_jobs_and_heartbeats")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
