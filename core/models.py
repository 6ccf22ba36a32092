from django.db import models


class RateBucket(models.Model):
    """The shared sending rate of one provider account when there is no Redis: the fields of
    `core.sending.ratelimit.BucketState` (times in Unix seconds, rates in messages a second)."""

    name = models.CharField(max_length=40, primary_key=True)
    tat = models.FloatField(default=0.0, help_text="When the next message may go at the rate in force.")
    pause = models.FloatField(default=0.0, help_text="Nobody sends before this (the provider asked us to wait).")
    learned = models.FloatField(default=0.0, help_text="A rate learned from the provider's 429 answers; 0 = none.")
    throttled_at = models.FloatField(default=0.0)
    raised_at = models.FloatField(default=0.0)
    window_start = models.FloatField(default=0.0)
    window_count = models.FloatField(default=0.0)
    observed = models.FloatField(default=0.0)

    class Meta:
        verbose_name = "sending rate"

    def __str__(self) -> str:
        return f"Sending rate of {self.name}"
