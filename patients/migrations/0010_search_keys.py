"""The chart's search keys (patients.models: name_key, chart_digits_key, phone_key, ...), filled in for
every existing patient, and their indexes.

The keys are computed in Python (the same functions as every save), 2,000 charts at a time, and
written with one UPDATE per batch (PostgreSQL: from a VALUES list; elsewhere bulk_update).
"""

from django.db import migrations, models

import patients.models

KEYS = ["search_first", "search_last", "search_last_end", "search_chart", "chart_digits", "phone_digits", "mobile_digits"]
BATCH = 2000


def fill_keys(apps, schema_editor):
    Patient = apps.get_model("patients", "Patient")
    Practice = apps.get_model("patients", "Practice")
    countries = dict(Practice.objects.values_list("pk", "country"))
    connection = schema_editor.connection
    last_id = 0
    while True:
        rows = list(
            Patient.objects.filter(pk__gt=last_id).order_by("pk").values_list(
                "pk", "practice_id", "first_name", "last_name", "chart_number", "phone", "mobile_phone"
            )[:BATCH]
        )
        if not rows:
            return
        last_id = rows[-1][0]
        values = []
        for pk, practice_id, first, last, chart, phone, mobile in rows:
            region = countries.get(practice_id, "US")
            values.append((
                pk,
                patients.models.name_key(first)[:100],
                patients.models.name_key(last)[:100],
                patients.models.last_word_key(last)[:100],
                patients.models.chart_key(chart)[:32],
                patients.models.chart_digits_key(chart)[:32],
                patients.models.phone_key(phone, region)[:32],
                patients.models.phone_key(mobile, region)[:20],
            ))
        if connection.vendor == "postgresql":
            placeholders = ", ".join(["(%s::bigint, %s, %s, %s, %s, %s, %s, %s)"] * len(values))
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE patients_patient AS p SET {', '.join(f'{key} = v.{key}' for key in KEYS)} "
                    f"FROM (VALUES {placeholders}) AS v(id, {', '.join(KEYS)}) WHERE p.id = v.id",
                    [value for row in values for value in row],
                )
        else:
            objects = []
            for pk, *keys in values:
                patient = Patient(pk=pk)
                for key, value in zip(KEYS, keys):
                    setattr(patient, key, value)
                objects.append(patient)
            Patient.objects.bulk_update(objects, KEYS, batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("patients", "0009_text_number_indexes")]

    operations = [
        migrations.AlterField(
            model_name="patient",
            name="date_of_birth",
            field=patients.models.DateOfBirthField(blank=True, null=True),
        ),
        *(
            migrations.AddField(
                model_name="patient",
                name=key,
                field=models.CharField(
                    blank=True, db_default="", default="", editable=False,
                    max_length={"mobile_digits": 20, "search_chart": 32, "chart_digits": 32, "phone_digits": 32}.get(key, 100),
                ),
            )
            for key in KEYS
        ),
        migrations.RunPython(fill_keys, migrations.RunPython.noop, elidable=True),
        *(
            migrations.AddIndex(
                model_name="patient",
                index=models.Index(
                    fields=[key], opclasses=["varchar_pattern_ops"], name=f"patient_{key}_idx",
                ),
            )
            for key in KEYS
        ),
    ]
