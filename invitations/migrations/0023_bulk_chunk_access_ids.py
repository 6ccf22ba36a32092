# A bulk run's chunk may hold the accesses of young children's parents and guardians it invites.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('invitations', '0022_handled_text_replies'),
    ]

    operations = [
        migrations.AddField(
            model_name='bulkrunchunk',
            name='access_ids',
            field=models.JSONField(blank=True, default=list),
        ),
    ]
