"""An email backend for benchmarks: does what Django's locmem backend does with each message
(builds its MIME form with `message.message()`), then drops it: no network I/O and no memory
growth over 100,000 messages."""

from django.core.mail.backends.base import BaseEmailBackend


class EmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        count = 0
        for message in email_messages:
            message.message()
            count += 1
        return count
