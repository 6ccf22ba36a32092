"""The invitation email editor on the portal pages: the practice's wording with snippet buttons,
a live preview, a test email to oneself, and the logo. `TemplateEditorViews` is part of
`invitations.admin_portal.BulkRunAdmin` (it uses that admin's `_practice` and `_context`)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.sending import outbox
from patients.models import Practice

from . import emails, template_html, template_service
from .access import can_manage_portal
from .models import InvitationTemplate

LOGO_MAX_BYTES = 512 * 1024
LOGO_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "GIF": "GIF"}
SAMPLE_FIRST_NAME = "Alex"


def _draft(practice: Practice, *, subject: str, html_body: str) -> InvitationTemplate:
    """An unsaved template as saving would store it (one-line subject, sanitised body)."""
    return InvitationTemplate(practice=practice, subject=" ".join(subject.split()), html_body=template_html.sanitise_html(html_body))


class TemplateEditorForm(forms.ModelForm):
    logo = forms.ImageField(
        required=False,
        help_text=f"PNG, JPEG or GIF, up to {LOGO_MAX_BYTES // 1024} KB. Shown where the body has [Logo].",
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the current logo")

    class Meta:
        model = InvitationTemplate
        fields = ["subject", "html_body"]
        widgets = {
            "subject": forms.TextInput(attrs={"size": 80}),
            "html_body": forms.Textarea(attrs={"rows": 22, "cols": 90, "style": "font-family: monospace;"}),
        }

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
            raise PermissionDenied("The invitation email is edited by the practice's admins and managers.")
        return practice

    def template_view(self, request: HttpRequest, practice_id: int):
        practice = self._template_practice(request, practice_id)
        template = InvitationTemplate.objects.filter(practice=practice).first()
        instance = template or InvitationTemplate(
            practice=practice, subject=template_html.DEFAULT_SUBJECT, html_body=template_html.DEFAULT_HTML_BODY
        )
        preview_source = instance
        removed: list[str] = []
        if request.method == "POST":
            form = TemplateEditorForm(request.POST, request.FILES, instance=instance)
            removed = template_html.removed_by_sanitiser(request.POST.get("html_body", ""))
            if form.is_valid():
                action = "send_test" if "send_test" in request.POST else "preview" if "preview" in request.POST else "save"
                if action == "save":
                    return self._save_template(request, practice, form)
                draft = _draft(practice, subject=form.cleaned_data["subject"], html_body=form.cleaned_data["html_body"])
                if action == "send_test":
                    self._send_test(request, practice, draft)
                preview_source = draft
        else:
            form = TemplateEditorForm(instance=instance)
        rendered = self._sample(practice, preview_source)
        return TemplateResponse(
            request, "admin/invitations/portal/template.html",
            self._context(
                request, f"Invitation email: {practice.name}", practice=practice, form=form, rendered=rendered,
                removed=removed, snippets=list(template_html.SNIPPETS.items()),
                subject_snippets=[(s, m) for s, m in template_html.SNIPPETS.items() if s in template_html.SUBJECT_SNIPPETS],
                is_default=template is None, sample_first_name=SAMPLE_FIRST_NAME,
                preview_url=reverse("admin:invitations_portal_template_preview", args=[practice.pk]),
                dashboard_url=reverse("admin:invitations_portal_dashboard", args=[practice.pk]),
            ),
        )

    def template_preview_view(self, request: HttpRequest, practice_id: int):
        """The live preview (a POST of the unsaved subject and body): the sample email as the
        editor's Preview button renders it, what saving would remove, and what would stop a save."""
        practice = self._template_practice(request, practice_id)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        subject, html_body = request.POST.get("subject", ""), request.POST.get("html_body", "")
        form = TemplateEditorForm({"subject": subject, "html_body": html_body}, instance=InvitationTemplate(practice=practice))
        rendered = self._sample(practice, _draft(practice, subject=subject, html_body=html_body))
        return JsonResponse({
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
            "removed": template_html.removed_by_sanitiser(html_body),
            "errors": [
                f"{form.fields[name].label}: {message}" if name in form.fields else str(message)
                for name, field_messages in form.errors.items() for message in field_messages
            ],
        })

    @staticmethod
    def _sample(practice: Practice, template: InvitationTemplate) -> emails.RenderedEmail:
        return emails.render(
            practice=practice,
            first_name=SAMPLE_FIRST_NAME,
            link=emails.registration_url("SAMPLE-LINK-FOR-PREVIEW"),
            expires_at=practice.link_expires_at(timezone.now()),
            template=template,
        )

    def _save_template(self, request: HttpRequest, practice: Practice, form: TemplateEditorForm):
        obj = form.save(commit=False)
        obj.practice = practice
        changed = [str(form.fields[name].label).lower() for name in form.changed_data if name in ("subject", "html_body")]
        template_service.save_template(
            obj, actor=request.user, changed=changed,
            logo=form.cleaned_data.get("logo"), remove_logo=form.cleaned_data.get("remove_logo", False),
        )
        self.message_user(request, "The invitation email was saved. New invitations use it.", messages.SUCCESS)
        removed = template_html.removed_by_sanitiser(form.cleaned_data["html_body"])
        if removed:
            self.message_user(
                request, "Some of what you wrote cannot go in an email and was left out of the saved version: "
                + "; ".join(removed) + ".",
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:invitations_portal_template", args=[practice.pk]))

    def _send_test(self, request: HttpRequest, practice: Practice, draft: InvitationTemplate) -> None:
        address = (request.user.email or "").strip()
        if not address:
            self.message_user(request, "Your account has no email address; add one to receive a test email.", messages.ERROR)
            return
        rendered = self._sample(practice, draft)
        message = EmailMultiAlternatives(
            subject=f"[Test] {rendered.subject}", body=rendered.text, from_email=emails.from_address(practice), to=[address],
        )
        message.attach_alternative(rendered.html, "text/html")
        message.tags = ["portal-invitation-test"]
        # The same path and account rate as every email; a request waits at most a few seconds.
        outcome = outbox.send_one(message, max_wait=5)
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
