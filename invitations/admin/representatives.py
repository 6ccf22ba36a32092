"""Representatives on the staff side: the patient page's Representatives box (who acts for the patient,
in which role and level, their invitation, Invite / Resend / Revoke access), the page to add one
(a new person, or the representative of a sibling; relationship, level, the reasons and consent the
practice's age bands ask for; invited at once by email, text or both), "Why no invite?"'s section
per representative, and the read-only lists of representatives and their access (tenant-scoped like
every list). The workflows are `invitations.representatives`."""

import datetime
import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.phones import MobileNumberField
from patients.admin.scoping import PracticeScopedAdmin, ReadOnlyAdmin
from patients.timezones import PracticeLocalTimes
from patients.models import AgeBand, Patient, normalise_email
from patients.models.representatives import (
    AccessLevel, AccessStatus, Relationship, Representative, RepresentativeAccess,
)

from invitations import eligibility, representatives
from invitations.models import Invitation
from invitations.vocabulary import SendBy


class RepresentativeForm(forms.Form):
    """Who acts for the patient, and how: a new person or one who already acts for a family member."""

    existing = forms.ModelChoiceField(
        label="Already a representative of a family member", queryset=Representative.objects.none(), required=False,
        help_text="Choose them to link this patient to the same person (their contact details and login are shared).",
    )
    first_name = forms.CharField(max_length=100, required=False)
    last_name = forms.CharField(max_length=100, required=False)
    email = forms.EmailField(required=False)
    mobile_phone = MobileNumberField(label="Mobile phone", required=False)
    sms_consent = forms.BooleanField(label="Consented to text messages", required=False)
    relationship = forms.ChoiceField(choices=Relationship.choices)
    level = forms.ChoiceField(choices=AccessLevel.choices, widget=forms.RadioSelect)
    full_access_reason = forms.CharField(
        label="Reason for full access", max_length=300, required=False,
        help_text="A teenager's representatives get limited access unless you record why full access is needed.",
    )
    patient_consent = forms.CharField(
        label="The patient's consent", max_length=300, required=False,
        help_text="For an adult patient: how they consented (e.g. 'signed form scanned 3/2/2026').",
    )
    court_document = forms.CharField(
        label="Court order", max_length=300, required=False,
        help_text="For a court-appointed guardian: the order on file (court, number, date). Their access has no end date.",
    )
    ends_on = forms.DateField(
        label="Access ends on", required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text="For a caregiver, if the access should end on a date. A parent's ends at the age of majority by itself.",
    )
    send_by = forms.ChoiceField(label="Invite now by", choices=[("", "Do not invite yet"), *SendBy.choices], required=False)

    def __init__(self, *args, patient: Patient, now: datetime.datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        self.now = now
        practice = patient.practice
        # The representatives of this patient's family: charts sharing the last name, address or phone.
        family = Patient.objects.filter(practice=practice).filter(
            Q(last_name__iexact=patient.last_name) | (Q(email=patient.email) & ~Q(email="")) | (Q(phone=patient.phone) & ~Q(phone=""))
        ).exclude(pk=patient.pk)
        self.fields["existing"].queryset = Representative.objects.filter(
            practice=practice, accesses__patient__in=family,
        ).exclude(accesses__patient=patient, accesses__status__in=[AccessStatus.INVITED, AccessStatus.ACTIVE]).distinct()
        self.fields["level"].initial = representatives.default_level(patient, now)
        self.fields["mobile_phone"].region = patient.practice.country
        if not practice.text_invitations_enabled:
            self.fields["send_by"].choices = [("", "Do not invite yet"), (SendBy.EMAIL, "Email")]

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data.get("email"))


    def clean(self):
        cleaned = super().clean()
        if cleaned.get("existing") is None:
            for name in ("first_name", "last_name"):
                if not (cleaned.get(name) or "").strip():
                    self.add_error(name, "Enter the representative's name (or choose a family member's representative).")
            if not cleaned.get("email") and not cleaned.get("mobile_phone") and not self.errors:
                self.add_error("email", "Enter an email address or a mobile number, so the invitation can reach them.")
        ends_at = self.ends_at()
        problems = representatives.grant_errors(
            self.patient, relationship=cleaned.get("relationship", ""), level=cleaned.get("level", ""),
            full_access_reason=cleaned.get("full_access_reason", ""), patient_consent=cleaned.get("patient_consent", ""),
            court_document=cleaned.get("court_document", ""), ends_at=ends_at, now=self.now,
        )
        for field, problem in problems.items():
            self.add_error(field if field in self.fields else None, problem)
        return cleaned

    def ends_at(self):
        ends_on = self.cleaned_data.get("ends_on") if hasattr(self, "cleaned_data") else None
        if ends_on is None:
            return None
        return datetime.datetime.combine(ends_on, datetime.time.min, tzinfo=zoneinfo.ZoneInfo(self.patient.practice.time_zone))


class PatientRepresentatives:
    """Mixed into the patient admin (`invitations.admin.patients`), which supplies `can_invite`,
    `can_revoke` and `get_object_or_404_scoped` (another practice's patient is a 404)."""

    def representatives_context(self, request: HttpRequest, patient: Patient, now: datetime.datetime) -> dict:
        practice = patient.practice
        band = practice.age_band(patient.date_of_birth, practice.today(now))
        rows = []
        for access in representatives.accesses_of_patient(patient)[:20]:
            latest = Invitation.objects.filter(access=access).order_by("-created_at", "-pk").first()
            reasons = [] if access.status != AccessStatus.INVITED else eligibility.representative_reasons_for(
                access, now=now, for_resend=latest is not None,
            )
            rows.append({
                "access": access, "latest": latest, "reasons": reasons,
                "contact": access.representative.contact_line(practice.country),
                "can_invite": access.status == AccessStatus.INVITED and not reasons and self.can_invite(request, practice.pk),
            })
        return {
            "family_access_enabled": practice.family_access_enabled,
            "age_band": band,
            "age_band_label": AgeBand(band).label if band else "",
            "representative_rows": rows,
            "can_add_representative": practice.family_access_enabled and self.can_invite(request, practice.pk),
        }

    def add_representative_view(self, request: HttpRequest, object_id: str):
        patient = self.get_object_or_404_scoped(request, object_id)
        if not self.can_invite(request, patient.practice_id):
            raise PermissionDenied("Your role at this practice does not allow adding representatives.")
        now = timezone.now()
        form = RepresentativeForm(request.POST or None, patient=patient, now=now)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            representative = data["existing"] or Representative.objects.create(
                practice=patient.practice, first_name=data["first_name"].strip(), last_name=data["last_name"].strip(),
                email=data["email"], mobile_phone=data["mobile_phone"], sms_consent=data["sms_consent"],
                created_at=now, created_by=request.user,
            )
            try:
                access = representatives.grant(
                    patient, representative, relationship=data["relationship"], level=data["level"], now=now,
                    actor=request.user, full_access_reason=data["full_access_reason"], patient_consent=data["patient_consent"],
                    court_document=data["court_document"], ends_at=form.ends_at(),
                )
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, problems)
            else:
                self.message_user(request, f"{representative.full_name} now has {access.get_level_display().lower()} to this patient's portal once they accept.", messages.SUCCESS)
                if data["send_by"]:
                    self._invite_representative(request, access, resend=False, send_by=data["send_by"])
                return HttpResponseRedirect(reverse("admin:patients_patient_change", args=[patient.pk]))
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": patient, "form": form,
            "title": f"Add a representative: {patient}",
            **self.representatives_context(request, patient, now),
        }
        return TemplateResponse(request, "admin/patients/patient/add_representative.html", context, status=400 if form.errors else 200)

    def representative_view(self, request: HttpRequest, object_id: str, access_id: int, operation: str):
        return require_POST(self._representative_view)(request, object_id, access_id, operation)

    def _representative_view(self, request: HttpRequest, object_id: str, access_id: int, operation: str):
        patient = self.get_object_or_404_scoped(request, object_id)  # another practice's patient: 404
        access = get_object_or_404(RepresentativeAccess, pk=access_id, patient=patient)  # another patient's: 404
        if operation not in ("invite", "resend", "revoke"):
            raise PermissionDenied("Unknown action.")
        allowed = self.can_revoke(request, patient.practice_id) if operation == "revoke" else self.can_invite(request, patient.practice_id)
        if not allowed:
            raise PermissionDenied("Your role at this practice does not allow this.")
        if operation == "revoke":
            note = (request.POST.get("note") or "").strip()
            if representatives.revoke(access, now=timezone.now(), actor=request.user, note=note):
                self.message_user(request, f"{access.representative.full_name} no longer has access; their open links stopped working.", messages.SUCCESS)
            else:
                self.message_user(request, "That access had already ended.", messages.INFO)
        else:
            send_by = request.POST.get("send_by") or SendBy.AUTO
            if send_by not in SendBy.values:
                self.message_user(request, "Choose how to send the invitation: email, text message or both.", messages.ERROR)
            else:
                self._invite_representative(request, access, resend=operation == "resend", send_by=send_by)
        return HttpResponseRedirect(reverse("admin:patients_patient_change", args=[patient.pk]))

    def _invite_representative(self, request, access, *, resend: bool, send_by: str) -> None:
        outcome = representatives.invite(access, now=timezone.now(), actor=request.user, resend=resend, send_by=send_by)
        name = access.representative.full_name
        if outcome.created:
            self.message_user(request, f"An invitation is on its way to {name}.", messages.SUCCESS)
        else:
            self.message_user(request, f"No invitation was sent to {name}: {eligibility.reasons_text(outcome.reasons)}", messages.WARNING)

    def representative_sections(self, patient: Patient, now: datetime.datetime) -> list[dict]:
        """"Why no invite?"'s section per representative: each rule of a representative's invitation."""
        sections = []
        for access in representatives.accesses_of_patient(patient)[:10]:
            verdicts = eligibility.representative_verdicts(access, now=now)
            checks = [
                {"label": rule.message, "ok": not verdicts[rule.code]}
                for rule in eligibility.REPRESENTATIVE_RULES if rule.code in verdicts
            ]
            sections.append({
                "title": f"{access.representative.full_name}, {access.get_relationship_display().lower()} ({access.get_status_display().lower()})",
                "failing": [c for c in checks if not c["ok"]],
                "passing": len([c for c in checks if c["ok"]]),
            })
        return sections

    def change_view(self, request, object_id, form_url="", extra_context=None):
        patient = Patient.objects.filter(pk=object_id).select_related("practice").first() if str(object_id).isdigit() else None
        if patient is not None and self.has_view_permission(request, patient):
            extra_context = {**(extra_context or {}), **self.representatives_context(request, patient, timezone.now())}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def diagnostics_view(self, request: HttpRequest, object_id: str):
        response = super().diagnostics_view(request, object_id)
        patient = self.get_object(request, object_id)
        response.context_data["representative_sections"] = self.representative_sections(patient, timezone.now())
        return response

    def representative_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("<path:object_id>/representatives/add/", self.admin_site.admin_view(self.add_representative_view),
                 name="%s_%s_add_representative" % info),
            path("<path:object_id>/representatives/<int:access_id>/<str:operation>/",
                 self.admin_site.admin_view(self.representative_view), name="%s_%s_representative" % info),
        ]


@admin.register(Representative)
class RepresentativeAdmin(PracticeScopedAdmin):
    """Representatives' names and contact details (a changed address or number revokes their open
    links, as a patient's does)."""

    list_display = ["last_name", "first_name", "contact", "linked", "practice"]
    list_filter = ["practice"]
    search_fields = ["last_name", "first_name", "=email"]
    fields = ["practice", "first_name", "last_name", "email", "mobile_phone", "sms_consent"]
    show_full_result_count = False

    @admin.display(description="contact")
    def contact(self, obj: Representative) -> str:
        parts = [obj.email] if obj.email else []
        if obj.mobile_phone:
            parts.append(f"…{obj.mobile_phone[-4:]}")
        return " · ".join(parts)

    @admin.display(description="own login", boolean=True)
    def linked(self, obj: Representative) -> bool:
        return obj.portal_user_id is not None

    def has_add_permission(self, request, *args):
        return False  # added from the patient's page, with the access they get

    def has_delete_permission(self, request, obj=None):
        return False  # revoke the access instead: the record of who had access stays

    def save_model(self, request, obj, form, change):
        obj.email = normalise_email(obj.email)  # the mobile number was read on the form (the model's clean_fields)
        super().save_model(request, obj, form, change)
        if change and {"email", "mobile_phone"} & set(form.changed_data):
            representatives.revoke_for_contact_change(obj, now=timezone.now())


@admin.register(RepresentativeAccess)
class RepresentativeAccessAdmin(ReadOnlyAdmin, PracticeLocalTimes, PracticeScopedAdmin):
    """Every grant of access: who acts for whom, how, since when, until when (read-only: grants and
    revocations go through the patient's page, which audits them)."""

    list_display = ["patient", "representative", "relationship", "level", "status", "granted_at", "ends", "practice"]
    list_filter = ["practice", "status", "relationship", "level"]
    list_select_related = ["patient", "representative", "practice"]
    search_fields = ["patient__last_name", "representative__last_name", "=patient__chart_number"]
    show_full_result_count = False
    readonly_fields = [
        "practice", "patient", "representative", "relationship", "level", "full_access_reason", "patient_consent",
        "court_document", "status", "granted_at", "granted_by", "granted_by_patient", "ends_at_majority", "ends_at",
        "linked_at", "ended_at", "end_reason", "end_note", "ended_by",
    ]
    fields = readonly_fields

    @admin.display(description="ends")
    def ends(self, obj: RepresentativeAccess) -> str:
        if obj.ends_at:
            return f"{obj.ends_at:%b %-d, %Y}"
        return "At the age of majority" if obj.ends_at_majority else ""



