import core.languages
import django.db.models.deletion
from django.db import migrations, models


def templates_in_practice_language(apps, schema_editor):
    """The one template a practice had is its version in the practice's language."""
    InvitationTemplate = apps.get_model("invitations", "InvitationTemplate")
    for template in InvitationTemplate.objects.select_related("practice"):
        if template.language != template.practice.default_language:
            template.language = template.practice.default_language
            template.save(update_fields=["language"])


class Migration(migrations.Migration):
    dependencies = [
        ("invitations", "0019_text_help"),
        ("patients", "0011_languages"),
    ]

    operations = [
        migrations.AddField(
            model_name="invitation",
            name="language",
            field=models.CharField(blank=True, db_default="", default="", editable=False, max_length=10),
        ),
        migrations.AddField(
            model_name="invitationtemplate",
            name="language",
            field=models.CharField(
                choices=core.languages.choices, db_default="en", default="en",
                help_text="Patients who prefer this language get this version.", max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="invitationtemplate",
            name="practice",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="invitation_templates", to="patients.practice",
            ),
        ),
        migrations.RunPython(templates_in_practice_language, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="invitationtemplate",
            constraint=models.UniqueConstraint(
                fields=("practice", "language"), name="invitation_template_one_per_language",
                violation_error_message="This practice already has a template in this language.",
            ),
        ),
    ]
