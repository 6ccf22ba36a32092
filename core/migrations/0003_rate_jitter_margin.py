# The shared sending rate tells a rare 429 at our own rate (timing jitter) from a real limit.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("core", "0002_hit_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="ratebucket",
            name="margin",
            field=models.FloatField(default=0.0, help_text="After a rare 429 at our rate: the share of our rate kept to; 0 = none."),
        ),
        migrations.AddField(model_name="ratebucket", name="calls", field=models.FloatField(default=0.0)),
        migrations.AddField(model_name="ratebucket", name="refusals", field=models.FloatField(default=0.0)),
        migrations.AddField(model_name="ratebucket", name="decayed_at", field=models.FloatField(default=0.0)),
    ]
