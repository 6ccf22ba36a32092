from django.db import models


class RateBucket(models.Model):
    """The shared sending rate of one provider account when there is no Redis
    (`core.sending.ratelimit.DatabaseRateLimiter`): two clock readings, in Unix seconds."""

    name = models.CharField(max_length=40, primary_key=True)
    #: When the next message may go at the configured rate (the bucket's "theoretical arrival time").
    tat = models.FloatField(default=0.0)
    #: Nobody sends before this (the provider asked us to wait).
    pause = models.FloatField(default=0.0)

    class Meta:
        verbose_name = "sending rate"

    def __str__(self) -> str:
        return f"Sending rate of {self.name}"
