"""Replies to invitation texts that were acted on, by Twilio's MessageSid.

The row is written in the same transaction as the reply's effect (a STOP's opt-outs and their audit
entries): a reply whose handling failed (a database error) leaves no row and is handled when Twilio
posts it again; a reply handled already is not handled twice, even when Twilio's retry arrives
while the first is still being handled (the unique id makes the second wait, then step aside).
Kept for a week (long past Twilio's retries), then deleted as new replies come in.
"""

import datetime

from django.db import models


class HandledReply(models.Model):
    KEEP_FOR = datetime.timedelta(days=7)

    message_sid = models.CharField(max_length=64, unique=True)
    handled_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "handled text reply"

    def __str__(self) -> str:
        return f"Reply handled at {self.handled_at:%Y-%m-%d %H:%M}"
