import core.languages
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0010_search_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="preferred_language",
            field=models.CharField(
                choices=core.languages.choices, db_default="en", default="en",
                help_text="The invitation email and text, and the portal's pages, are in this language.",
                max_length=10, verbose_name="preferred language",
            ),
        ),
        migrations.AddField(
            model_name="practice",
            name="default_language",
            field=models.CharField(
                choices=core.languages.choices, db_default="en", default="en",
                help_text="Patients whose language has no invitation email or text written yet get this language's.",
                max_length=10, verbose_name="the practice's language",
            ),
        ),
        migrations.AddField(
            model_name="practice",
            name="language_assistance_notice",
            field=models.BooleanField(
                db_default=False, default=False,
                help_text="Adds a short notice that language help is free, with taglines in the common languages, "
                "to the invitation email's footer (Section 1557 of the ACA).",
                verbose_name="notice of free language help in emails",
            ),
        ),
        migrations.AddField(
            model_name="practice",
            name="language_assistance_text",
            field=models.TextField(
                blank=True, db_default="", default="",
                help_text="Plain text, one line per language. Empty: the default notice with the practice's phone number.",
                verbose_name="language help notice",
            ),
        ),
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(fields=["practice", "preferred_language"], name="patient_language_idx"),
        ),
    ]
