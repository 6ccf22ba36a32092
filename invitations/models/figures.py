"""The portal access dashboard's stored figures: one snapshot per practice.

Counting a practice's patients against every eligibility rule scans all of them (seconds at a
million), so pages read this row and a worker recounts it (`invitations.adoption.refresh`):
every 10 minutes by beat, after a bulk run, after the portal switches change and on request.
"""

from django.db import models

from patients.models import Practice


class PracticeFigures(models.Model):
    practice = models.OneToOneField(Practice, primary_key=True, on_delete=models.CASCADE, related_name="portal_figures")
    #: When the figures in `data` were counted.
    computed_at = models.DateTimeField()
    #: `invitations.adoption.Figures.to_json()`: counts only, no patient data.
    data = models.JSONField()
    #: Set when a recount is enqueued and cleared when it lands: a page view, a second click or a
    #: bulk run finishing while it is set does not enqueue another (unless it is old: a lost task).
    refresh_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "portal figures"
        verbose_name_plural = "portal figures"

    def __str__(self) -> str:
        return f"Portal figures of {self.practice.name} at {self.computed_at:%Y-%m-%d %H:%M}"
