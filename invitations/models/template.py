"""A practice's own wording for the invitation email and text (the editor is `invitations.admin.template_editor`)."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from patients.models import Practice

from invitations.wording import email_html
from invitations.wording import invitation_text


class InvitationTemplate(models.Model):
    """A practice's own wording for the invitation email.

    Staff write plain HTML with bracketed snippets (see `invitations.wording.email_html.SNIPPETS`), never
    template language; the HTML is sanitised on save. A practice without one uses the default.
    """

    practice = models.OneToOneField(Practice, on_delete=models.CASCADE, related_name="invitation_template")
    subject = models.CharField(
        max_length=150,
        help_text="Keep it generic: no health information. Snippet allowed: [Practice Name].",
    )
    html_body = models.TextField(
        "email body (HTML)",
        help_text="Snippets: [First Name], [Practice Name], [Practice Contact], [Registration Link], "
        "[Expiry Date], [Logo]. [Registration Link] is required.",
    )
    text_body = models.TextField(
        "invitation text", blank=True, default="", db_default="",
        help_text="One text message (160 characters with the link). Snippets: [Practice Name], [Practice Phone], "
        "[Registration Link] (required); name the practice and say how to opt out (STOP). Empty: the default wording.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "invitation template"

    def __str__(self) -> str:
        return f"Invitation template of {self.practice}"

    def clean(self) -> None:
        email_html.validate_template(subject=self.subject, html_body=self.html_body)
        if self.practice_id:
            try:
                invitation_text.validate_text_body(self.text_body, practice=self.practice)
            except ValidationError as exc:
                raise ValidationError({"text_body": exc.messages}) from None

    def save(self, *args, **kwargs) -> None:
        self.subject = " ".join(self.subject.split())
        self.html_body = email_html.sanitise_html(self.html_body)
        self.text_body = " ".join((self.text_body or "").split())
        super().save(*args, **kwargs)

    @classmethod
    def default(cls) -> "InvitationTemplate":
        """An unsaved template holding the default wording (for practices without their own)."""
        return cls(subject=email_html.DEFAULT_SUBJECT, html_body=email_html.DEFAULT_HTML_BODY)

    @classmethod
    def for_practice(cls, practice) -> "InvitationTemplate":
        """The practice's template, else the default one: one query, never None."""
        return cls.objects.filter(practice_id=practice.pk).first() or cls.default()
