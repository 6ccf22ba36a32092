"""The invitation wording's pages: the editor (the practice's wording of the email and of the text,
with snippet buttons, a live preview of both (the text as the patient reads it, with its length),
a test email to oneself, and the logo) and the plain list of practices' templates.

`TemplateEditorViews` is served by `invitations.admin.bulk_runs.BulkRunAdmin` beside the dashboard
and Activate Now (it uses that admin's `_practice` and `_context`)."""

from dataclasses import dataclass
from typing import Optional

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.sending import engine
from core.sending.text_segments import GSM7_SINGLE, measure
from core.sending.transports import Item
from core.sending.transports import email as email_transport
from core import languages
from patients import audit, tenancy
from patients.admin.scoping import PracticeScopedAdmin, PracticeScopedForm
from patients.models import Practice

from invitations import services
from invitations.wording import invitation_email
from invitations.wording import email_html
from invitations.wording import invitation_text
from invitations.admin.permissions import can_manage_portal
from invitations.models import InvitationTemplate

LOGO_MAX_BYTES = 512 * 1024
LOGO_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "GIF": "GIF"}
SAMPLE_FIRST_NAME = "Alex"


#: The fields whose change the audit trail names (the logo is added by `save_template`).
WORDING_FIELDS = ("subject", "html_body", "text_body")


def _draft(practice: Practice, *, subject: str, html_body: str, text_body: str = "", language: str = "") -> InvitationTemplate:
    """An unsaved template as saving would store it (one-line subject and text, sanitised body)."""
    return InvitationTemplate(
        practice=practice, subject=" ".join(subject.split()), html_body=email_html.sanitise_html(html_body),
        text_body=" ".join((text_body or "").split()), language=language or practice.default_language,
    )


def _language(request: HttpRequest, practice: Practice) -> str:
    """The version the editor shows: ?language= (or the form's), else the practice's language."""
    return languages.supported(request.POST.get("language") or request.GET.get("language")) or practice.default_language


@dataclass(frozen=True)
class LanguageTab:
    code: str
    name: str
    written: bool
    url: str


def _tabs(practice: Practice, written: dict) -> list[LanguageTab]:
    url = reverse("admin:invitations_portal_template", args=[practice.pk])
    return [
        LanguageTab(code, languages.english_name(code), code in written, f"{url}?language={code}") for code in languages.codes()
    ]


@dataclass(frozen=True)
class TextSample:
    """The invitation text as a patient reads it (a link of the real length) and its size."""

    text: str
    length: int
    limit: int
    fits: bool
    cost: str  # its encoding, length and messages in words

    @classmethod
    def of(cls, practice: Practice, body: str, language: str = "") -> "TextSample":
        with languages.speaking(language or practice.default_language):  # the default wording in the version's language
            text = invitation_text.sample(practice, body)
        size = measure(text)
        return cls(text=text, length=size.units, limit=GSM7_SINGLE, fits=invitation_text.fits(text), cost=invitation_text.cost(text))

    def to_json(self) -> dict:
        return {"text": self.text, "length": self.length, "limit": self.limit, "fits": self.fits, "cost": self.cost}


class TemplateEditorForm(forms.ModelForm):
    logo = forms.ImageField(
        required=False,
        help_text=f"PNG, JPEG or GIF, up to {LOGO_MAX_BYTES // 1024} KB. Shown where the body has [Logo].",
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the current logo")

    class Meta:
        model = InvitationTemplate
        fields = ["subject", "html_body", "text_body"]
        widgets = {
            "subject": forms.TextInput(attrs={"size": 80}),
            "html_body": forms.Textarea(attrs={"rows": 22, "cols": 90, "style": "font-family: monospace;"}),
            "text_body": forms.Textarea(attrs={"rows": 3, "cols": 90, "placeholder": invitation_text.DEFAULT_TEXT_BODY}),
        }

    def clean_text_body(self) -> str:
        # Checked here, not only in the model's clean(), so the text's problems show on its field
        # even when the email has problems of its own (the model stops at the first).
        body = self.cleaned_data.get("text_body", "")
        try:
            invitation_text.validate_text_body(body, practice=self.instance.practice)
        except forms.ValidationError:
            # The model's clean() then checks the unsaved instance's text; it must not add a second
            # error about the saved wording (too long since the practice was renamed, say).
            self.instance.text_body = ""
            raise
        return body

    def clean_logo(self):
        logo = self.cleaned_data.get("logo")
        if not logo:
            return logo
        if logo.size > LOGO_MAX_BYTES:
            raise forms.ValidationError(
                f"The logo is {logo.size // 1024:,} KB; the limit is {LOGO_MAX_BYTES // 1024} KB. "
                "Save it smaller (for example 400 pixels wide) and upload it again."
            )
        image_format = getattr(getattr(logo, "image", None), "format", None)
        if image_format not in LOGO_FORMATS:
            raise forms.ValidationError("Upload the logo as a PNG, JPEG or GIF image.")
        return logo


class TemplateEditorViews:
    """The editor's page and its live-preview endpoint (routed by `BulkRunAdmin.get_urls`)."""

    def _template_practice(self, request: HttpRequest, practice_id: int) -> Practice:
        practice = self._practice(request, practice_id)
        if not can_manage_portal(request.user, practice.pk):
            raise PermissionDenied("The invitation email and text are edited by the practice's admins and managers.")
        return practice

    def template_view(self, request: HttpRequest, practice_id: int):
        practice = self._template_practice(request, practice_id)
        language = _language(request, practice)
        written = InvitationTemplate.written(practice)
        template = written.get(language)
        # A version not written yet starts from the shipped wording in its language.
        instance = template or InvitationTemplate.default(language)
        instance.practice = practice
        preview_source = instance
        removed: list[str] = []
        if request.method == "POST":
            form = TemplateEditorForm(request.POST, request.FILES, instance=instance)
            removed = email_html.removed_by_sanitiser(request.POST.get("html_body", ""))
            if form.is_valid():
                action = "send_test" if "send_test" in request.POST else "preview" if "preview" in request.POST else "save"
                if action == "save":
                    return self._save_template(request, practice, form)
                draft = _draft(
                    practice, subject=form.cleaned_data["subject"], html_body=form.cleaned_data["html_body"],
                    text_body=form.cleaned_data["text_body"], language=language,
                )
                if action == "send_test":
                    self._send_test(request, practice, draft)
                preview_source = draft
            # The text's sample shows what was typed, even when it cannot be saved (as the live preview).
            text_body = " ".join(request.POST.get("text_body", "").split())
        else:
            form = TemplateEditorForm(instance=instance)
            text_body = instance.text_body
        rendered = self._sample(practice, preview_source)
        return TemplateResponse(
            request, "admin/invitations/template_editor.html",
            self._context(
                request, f"Invitation email and text: {practice.name}", practice=practice, form=form, rendered=rendered,
                text_sample=TextSample.of(practice, text_body, language),
                removed=removed, snippets=list(email_html.SNIPPETS.items()),
                subject_snippets=[(s, m) for s, m in email_html.SNIPPETS.items() if s in email_html.SUBJECT_SNIPPETS],
                text_snippets=invitation_text.TEXT_SNIPPETS,
                is_default=template is None, sample_first_name=SAMPLE_FIRST_NAME,
                language=language, language_name=languages.english_name(language), tabs=_tabs(practice, written),
                falls_back_to=(
                    languages.english_name(InvitationTemplate.choose(practice, language, written=written).language)
                    if template is None and InvitationTemplate.falls_back(practice, language, written=written) else ""
                ),
                preview_url=reverse("admin:invitations_portal_template_preview", args=[practice.pk]),
                dashboard_url=reverse("admin:invitations_portal_dashboard", args=[practice.pk]),
            ),
        )

    def template_preview_view(self, request: HttpRequest, practice_id: int):
        """The live preview (a POST of the unsaved subject, body and text): the sample email as the
        editor's Preview button renders it, the sample text with its length, what saving would
        remove, and what would stop a save."""
        practice = self._template_practice(request, practice_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        subject, html_body = request.POST.get("subject", ""), request.POST.get("html_body", "")
        text_body = request.POST.get("text_body", "")
        language = _language(request, practice)
        form = TemplateEditorForm(
            {"subject": subject, "html_body": html_body, "text_body": text_body},
            instance=InvitationTemplate(practice=practice, language=language),
        )
        rendered = self._sample(practice, _draft(practice, subject=subject, html_body=html_body, language=language))
        return JsonResponse({
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "sms": TextSample.of(practice, " ".join(text_body.split()), language).to_json(),
            "removed": email_html.removed_by_sanitiser(html_body),
            "errors": [
                f"{form.fields[name].label}: {message}" if name in form.fields else str(message)
                for name, field_messages in form.errors.items() for message in field_messages
            ],
        })

    @staticmethod
    def _sample(practice: Practice, template: InvitationTemplate) -> invitation_email.RenderedEmail:
        return invitation_email.render(
            practice=practice,
            first_name=SAMPLE_FIRST_NAME,
            link=invitation_email.registration_url("SAMPLE-LINK-FOR-PREVIEW"),
            expires_at=practice.link_expires_at(timezone.now()),
            template=template,
        )

    def _save_template(self, request: HttpRequest, practice: Practice, form: TemplateEditorForm):
        obj = form.save(commit=False)
        obj.practice = practice
        changed = [str(form.fields[name].label).lower() for name in form.changed_data if name in WORDING_FIELDS]
        services.save_template(
            obj, actor=request.user, changed=changed,
            logo=form.cleaned_data.get("logo"), remove_logo=form.cleaned_data.get("remove_logo", False),
        )
        self.message_user(request, "The invitation email and text were saved. New invitations use them.", messages.SUCCESS)
        removed = email_html.removed_by_sanitiser(form.cleaned_data["html_body"])
        if removed:
            self.message_user(
                request, "Some of what you wrote cannot go in an email and was left out of the saved version: "
                + "; ".join(removed) + ".",
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:invitations_portal_template", args=[practice.pk]) + f"?language={obj.language}")

    def _send_test(self, request: HttpRequest, practice: Practice, draft: InvitationTemplate) -> None:
        address = (request.user.email or "").strip()
        if not address:
            self.message_user(request, "Your account has no email address; add one to receive a test email.", messages.ERROR)
            return
        rendered = self._sample(practice, draft)
        message = EmailMultiAlternatives(
            subject=f"[Test] {rendered.subject}", body=rendered.text, from_email=invitation_email.from_address(practice), to=[address],
        )
        message.attach_alternative(rendered.html, "text/html")
        message.tags = ["portal-invitation-test"]
        # The same path and account rate as every email; a request waits at most a few seconds.
        outcome = engine.send_one(Item(key=None, to=address, payload=message), via=email_transport.for_one(), max_wait=5)
        if not outcome.sent:
            self.message_user(
                request, f"The test email could not be sent: the email service answered {outcome.error.detail} "
                "Nothing was saved; try again in a minute.", messages.ERROR,
            )
            return
        self.message_user(
            request, f"A test email (sample patient {SAMPLE_FIRST_NAME}, a link that does not work) was sent to {address}.",
            messages.SUCCESS,
        )


class InvitationTemplateForm(PracticeScopedForm):
    class Meta:
        model = InvitationTemplate
        fields = ["practice", "language", "subject", "html_body"]
        widgets = {"html_body": forms.Textarea(attrs={"rows": 20, "cols": 100})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "language" in self.fields:  # not on a read-only view
            self.fields["language"].required = False  # left out: the practice's language

    def clean_language(self) -> str:
        practice = self.cleaned_data.get("practice")
        return self.cleaned_data.get("language") or (practice.default_language if practice else languages.DEFAULT_LANGUAGE)


@admin.register(InvitationTemplate)
class InvitationTemplateAdmin(PracticeScopedAdmin):
    """A basic editor; the preview and richer editing live with the practice settings work."""

    form = InvitationTemplateForm
    list_display = ["practice", "language", "subject", "updated_at", "updated_by"]
    list_select_related = ["practice", "updated_by"]
    list_filter = ["language"]
    readonly_fields = ["updated_at", "updated_by", "snippets"]
    fields = ["practice", "language", "subject", "html_body", "snippets", "updated_at", "updated_by"]

    def editable_practice_ids(self, request) -> Optional[set[int]]:
        """The wording patients receive is the practice admins' and managers' call (roles.MANAGING_ROLES)."""
        ids = self.scoped_practice_ids(request, "change")
        if ids is None:
            return None
        return {pk for pk in ids if tenancy.manages(request.user, pk)}

    def _may_edit(self, request, obj=None) -> bool:
        ids = self.editable_practice_ids(request)
        if ids is None:
            return True
        return obj.practice_id in ids if obj is not None and obj.pk else bool(ids)

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._may_edit(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may_edit(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may_edit(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        ids = self.editable_practice_ids(request)
        if db_field.name == "practice" and ids is not None:
            field.queryset = field.queryset.filter(pk__in=ids)
        return field

    @admin.display(description="available snippets")
    def snippets(self, obj=None):
        items = format_html_join("", "<li><code>{}</code>: {}</li>", email_html.SNIPPETS.items())
        return format_html("<ul>{}</ul><p>Write plain HTML; scripts and unsafe markup are removed on save.</p>", items)

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("subject", email_html.DEFAULT_SUBJECT)
        initial.setdefault("html_body", email_html.DEFAULT_HTML_BODY)
        return initial

    def save_model(self, request, obj, form, change):
        labels, _ = audit.describe_changes(form, with_values=False)
        services.save_template(obj, actor=request.user, changed=[labels] if labels else [])
