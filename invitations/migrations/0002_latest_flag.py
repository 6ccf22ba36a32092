from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def flag_latest(apps, schema_editor):
    Invitation = apps.get_model("invitations", "Invitation")
    newest = Invitation.objects.filter(patient_id=OuterRef("patient_id")).order_by("-created_at", "-id").values("pk")[:1]
    Invitation.objects.filter(pk=Subquery(newest)).update(is_latest=True)


class Migration(migrations.Migration):

    dependencies = [
        ("invitations", "0001_initial"),
    ]

    operations = [
        # Existing rows start unflagged; only each patient's newest is flagged, then the
        # default for new rows becomes True and the one-per-patient constraint applies.
        migrations.AddField(
            model_name="invitation",
            name="is_latest",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(flag_latest, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="invitation",
            name="is_latest",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.AddIndex(
            model_name="invitation",
            index=models.Index(
                condition=models.Q(("is_latest", True)),
                fields=["practice", "status", "expires_at"],
                name="invitation_latest_status_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="invitation",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_latest", True)), fields=("patient",), name="invitation_one_latest_per_patient"
            ),
        ),
    ]
