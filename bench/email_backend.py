"""An email backend for benchmarks: does what Django's locmem backend does with each message
(builds its MIME form with `message.message()`, which validates every header), then gives it a
message id the way an anymail provider backend does, and drops it: no network I/O and no memory
growth over 100,000 messages. The message ids exercise the same bookkeeping as real sends."""

import uuid

from anymail.message import AnymailRecipientStatus, AnymailStatus
from django.core.mail.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        count = 0
        for message in email_messages:
            message.message()
            status = AnymailStatus()
            status.set_recipient_status(
                {to: AnymailRecipientStatus(message_id=str(uuid.uuid4()), status="sent") for to in message.to}
            )
            message.anymail_status = status
            count += 1
        return count
