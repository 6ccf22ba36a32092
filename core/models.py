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
    margin = models.FloatField(default=0.0, help_text="After a rare 429 at our rate: the share of our rate kept to; 0 = none.")
    calls = models.FloatField(default=0.0)
    refusals = models.FloatField(default=0.0)
    decayed_at = models.FloatField(default=0.0)

    class Meta:
        verbose_name = "sending rate"

    def __str__(self) -> str:
        return f"Sending rate of {self.name}"


class HitCount(models.Model):
    """One rate-limit counter when there is no Redis (`core.throttle`): hits of one client address
    or account (hashed) in the current fixed window."""

    name = models.CharField(max_length=100, primary_key=True)
    window_index = models.BigIntegerField(help_text="Unix time divided by the window's length.")
    hits = models.PositiveIntegerField(default=0)
    expires_at = models.FloatField(db_index=True)

    class Meta:
        verbose_name = "rate-limit counter"

    def __str__(self) -> str:
        return self.name
