"""A practice's own wording for the invitation email and text, one version per language (the editor
is `invitations.admin.template_editor`)."""

import functools
from typing import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from core import languages
from patients.models import Practice

from invitations.wording import email_html
from invitations.wording import invitation_text


class InvitationTemplate(models.Model):
    """A practice's own wording for the invitation email and text in one language.

    Staff write plain HTML with bracketed snippets (see `invitations.wording.email_html.SNIPPETS`), never
    template language; the HTML is sanitised on save. Which version a patient gets is `choose`: their
    language's, else the practice's language's, else the shipped default in their language.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="invitation_templates")
    language = models.CharField(
        max_length=10, choices=languages.choices, default=languages.DEFAULT_LANGUAGE, db_default=languages.DEFAULT_LANGUAGE,
        help_text="Patients who prefer this language get this version.",
    )
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
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "language"], name="invitation_template_one_per_language",
                violation_error_message="This practice already has a template in this language.",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation template of {self.practice} ({languages.english_name(self.language)})"

    def clean(self) -> None:
        email_html.validate_template(subject=self.subject, html_body=self.html_body)
        if self.practice_id:
            try:
                with languages.speaking(self.language):
                    invitation_text.validate_text_body(self.text_body, practice=self.practice)
            except ValidationError as exc:
                raise ValidationError({"text_body": exc.messages}) from None

    def save(self, *args, **kwargs) -> None:
        self.subject = " ".join(self.subject.split())
        self.html_body = email_html.sanitise_html(self.html_body)
        self.text_body = " ".join((self.text_body or "").split())
        super().save(*args, **kwargs)

    @classmethod
    def default(cls, language: str = languages.DEFAULT_LANGUAGE) -> "InvitationTemplate":
        """An unsaved template holding the shipped wording in `language` (for practices without their own)."""
        with languages.speaking(language) as language:
            return cls(language=language, subject=email_html.default_subject(), html_body=email_html.default_html_body())

    @classmethod
    def written(cls, practice) -> dict[str, "InvitationTemplate"]:
        """The versions the practice wrote, by language: one query."""
        return {template.language: template for template in cls.objects.filter(practice_id=practice.pk)}

    @classmethod
    def choose(cls, practice, language: str, *, written: "dict[str, InvitationTemplate] | None" = None) -> "InvitationTemplate":
        """The version a patient who prefers `language` gets (never None): the practice's own in that
        language; else, when the practice wrote its own in its language, that one (a fallback the editor
        and Activate Now's preview name); else the shipped default in the patient's language. Its
        `language` is the language to write the email and text in."""
        language = languages.supported(language) or practice.default_language
        written = cls.written(practice) if written is None else written
        if language in written:
            return written[language]
        if practice.default_language in written:
            return written[practice.default_language]
        return cls.default(language)

    @classmethod
    def falls_back(cls, practice, language: str, *, written: "dict[str, InvitationTemplate] | None" = None) -> bool:
        """Whether patients of this language get another language's version (the practice wrote its
        own wording, but not yet in their language)."""
        return cls.choose(practice, language, written=written).language != (languages.supported(language) or language)

    @classmethod
    def versions(cls, practice) -> "Callable[[str], InvitationTemplate]":
        """`choose` for many patients of one practice (a bulk run's chunk): the versions are read
        once, and each language's is chosen once."""
        written = cls.written(practice)

        @functools.cache
        def version(language: str) -> "InvitationTemplate":
            return cls.choose(practice, language, written=written)

        return version

    @classmethod
    def for_practice(cls, practice, language: "str | None" = None) -> "InvitationTemplate":
        """The version for a language (by default the practice's): `choose`."""
        return cls.choose(practice, language or practice.default_language)
