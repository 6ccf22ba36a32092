"""Family and caregiver access on the patient's side: a representative's registration from their
invitation (confirm the patient's last name and date of birth, then create a login or use the one
they have, which links the patient to it), and an adult patient's own page to see who has access to
their portal, invite a caregiver (full or limited, with an end date) and revoke access at once.

The workflows are `invitations.representatives`; which record a login opens is `portal.records`.
"""

import datetime
import zoneinfo

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from core.phones import MobileNumberField
from invitations import representatives
from invitations.models import Channel, EventKind
from invitations.vocabulary import SendBy
from patients.models import AgeBand, normalise_email
from patients.models.representatives import AccessLevel, AccessStatus, Relationship, Representative
from portal.forms import RegistrationForm
from portal.guards import patient_required
from portal import records

#: How far ahead an adult may set a caregiver's end date.
LONGEST_CAREGIVER_ACCESS = datetime.timedelta(days=5 * 366)


# -- a representative registers from their invitation ------------------------------------------------


class RepresentativeLinkForm(RegistrationForm):
    """The patient's last name and date of birth (as the practice has them), then the representative's
    own login: a new one, or one they have (its password), or the one they are signed in with."""

    has_login = forms.TypedChoiceField(
        label=_("Your login"), coerce=lambda value: value == "yes", initial="no", widget=forms.RadioSelect,
        choices=[("no", _("I am new here: create my login")), ("yes", _("I already have a portal login"))],
    )
    password = forms.CharField(
        label=_("Your password"), strip=False, required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, signed_in_user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.signed_in_user = signed_in_user
        self.fields["last_name"].label = _("The patient's last name")
        self.fields["date_of_birth"].label = _("The patient's date of birth")
        for name in ("password1", "password2", "username"):
            self.fields[name].required = False
        if signed_in_user is not None:
            for name in ("has_login", "username", "password", "password1", "password2"):
                del self.fields[name]

    def clean_username(self) -> str:
        if not (self.data.get(self.add_prefix("username")) or "").strip():
            return ""
        return super().clean_username()

    def clean(self):
        cleaned = forms.Form.clean(self)
        if self.signed_in_user is not None:
            return cleaned
        if not cleaned.get("username") and "username" not in self.errors:
            self.add_error("username", gettext("Enter your username."))
        if cleaned.get("has_login"):
            if not cleaned.get("password"):
                self.add_error("password", gettext("Enter your password."))
            return cleaned
        if not cleaned.get("password1"):
            self.add_error("password1", gettext("Choose a password."))
            return cleaned
        return super().clean()


def register_representative(request: HttpRequest, invitation, *, now: datetime.datetime, link_page) -> HttpResponse:
    """The registration link of an invitation to a representative (`portal.pages.registration.register`
    hands it over): the same lockout as a patient's own link."""
    state = representatives.link_state(invitation, now)
    if state != "usable":
        return link_page(request, state, invitation)
    signed_in = request.user if representatives.may_represent(request.user) else None
    if request.method == "GET":
        invitation.record(EventKind.LINK_OPENED, now=now, detail="From the text" if invitation.found_via == Channel.TEXT else "")
        return _page(request, invitation, RepresentativeLinkForm(invitation=invitation, signed_in_user=signed_in))
    form = RepresentativeLinkForm(request.POST, invitation=invitation, signed_in_user=signed_in)
    if not form.is_valid():
        return _page(request, invitation, form)
    data = form.cleaned_data
    attempt = representatives.attempt_link(
        invitation.pk, last_name=data["last_name"], date_of_birth=data["date_of_birth"], now=now,
        via=invitation.found_via, signed_in_user=signed_in, username=data.get("username", ""),
        password=data.get("password") if data.get("has_login") else data.get("password1", ""),
        new_login=not data.get("has_login"),
    )
    if attempt.outcome == "mismatch":
        form.identity_not_confirmed()
        return _page(request, invitation, form)
    if attempt.outcome == "username_taken":
        form.add_error("username", gettext("That username is taken; choose another."))
        return _page(request, invitation, form)
    if attempt.outcome == "sign_in_failed":
        form.add_error("password", gettext("That username and password do not match a portal login."))
        return _page(request, invitation, form)
    if attempt.outcome == "not_a_portal_login":
        form.add_error(None, gettext("Staff accounts cannot act for patients: sign out, then open the link again."))
        return _page(request, invitation, form)
    if attempt.outcome != "linked":
        return link_page(request, attempt.outcome, invitation)
    if signed_in is None:
        login(request, attempt.user, backend="django.contrib.auth.backends.ModelBackend")
    records.open_patient(request, invitation.patient_id)
    messages.success(
        request, gettext("You can now see %(name)s's portal. Welcome!") % {"name": invitation.patient.first_name},
    )
    return redirect("portal:home")


def _page(request, invitation, form) -> HttpResponse:
    return render(
        request, "portal/register_representative.html",
        {"form": form, "practice": invitation.practice, "patient_first_name": invitation.patient.first_name},
        status=200 if not form.errors else 400,
    )


# -- an adult patient's caregivers ---------------------------------------------------------------------


def may_manage_caregivers(record, now: datetime.datetime) -> bool:
    """Only an adult, on their own record, at a practice with family access on."""
    if not record.is_own:
        return False
    practice = record.patient.practice
    return practice.age_band(record.patient.date_of_birth, practice.today(now)) == AgeBand.ADULT


class CaregiverForm(forms.Form):
    first_name = forms.CharField(label=_("Their first name"), max_length=100)
    last_name = forms.CharField(label=_("Their last name"), max_length=100)
    email = forms.EmailField(label=_("Their email address"), required=False)
    mobile_phone = MobileNumberField(label=_("Their mobile number"), required=False)
    sms_consent = forms.BooleanField(
        label=_("They agreed to get a text message with the invitation"), required=False,
    )
    level = forms.ChoiceField(
        label=_("What they may see"), widget=forms.RadioSelect, initial=AccessLevel.FULL,
        choices=[
            (AccessLevel.FULL, _("Full access: everything you see in your portal")),
            (AccessLevel.LIMITED, _("Limited access: your name and how to reach the practice, not your details or settings")),
        ],
    )
    ends_on = forms.DateField(
        label=_("Access ends on"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Leave empty for no end date; you can revoke it at any time."),
    )

    def __init__(self, *args, practice, today: datetime.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.practice = practice
        self.fields["mobile_phone"].region = practice.country
        self.today = today

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data.get("email"))


    def clean_ends_on(self):
        ends_on = self.cleaned_data.get("ends_on")
        if ends_on is not None and ends_on <= self.today:
            raise ValidationError(gettext("Choose a date after today."))
        if ends_on is not None and ends_on > self.today + LONGEST_CAREGIVER_ACCESS:
            raise ValidationError(gettext("Choose a date within five years."))
        return ends_on

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("email") and not cleaned.get("mobile_phone") and not self.errors:
            raise ValidationError(gettext("Give their email address or mobile number, so the invitation reaches them."))
        if cleaned.get("mobile_phone") and not cleaned.get("email") and not cleaned.get("sms_consent"):
            self.add_error("sms_consent", gettext("Without an email address the invitation goes by text: they must agree to it."))
        return cleaned

    def ends_at(self):
        ends_on = self.cleaned_data.get("ends_on")
        if ends_on is None:
            return None
        zone = zoneinfo.ZoneInfo(self.practice.time_zone)
        return datetime.datetime.combine(ends_on, datetime.time.min, tzinfo=zone)


@patient_required
@require_http_methods(["GET", "POST"])
def caregivers(request: HttpRequest, patient) -> HttpResponse:
    now = timezone.now()
    if not may_manage_caregivers(request.record, now):
        return render(request, "portal/not_a_patient.html", status=403)
    practice = patient.practice
    form = CaregiverForm(request.POST or None, practice=practice, today=practice.today(now))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        representative = Representative.objects.create(
            practice=practice, first_name=data["first_name"].strip(), last_name=data["last_name"].strip(),
            email=data["email"], mobile_phone=data["mobile_phone"], sms_consent=data["sms_consent"], created_at=now,
        )
        try:
            access = representatives.grant(
                patient, representative, relationship=Relationship.CAREGIVER, level=data["level"], now=now,
                actor=request.user, ends_at=form.ends_at(), by_patient=True,
            )
        except ValidationError as error:
            representative.delete()
            for field, problems in error.message_dict.items():
                form.add_error(None if field not in form.fields else field, problems)
        else:
            outcome = representatives.invite(access, now=now, actor=request.user, send_by=SendBy.AUTO)
            if outcome.created:
                messages.success(request, gettext("%(name)s is invited. Their access starts when they accept.") % {
                    "name": representative.full_name,
                })
            else:
                messages.warning(request, gettext("%(name)s has access, but no invitation could be sent: %(why)s") % {
                    "name": representative.full_name, "why": " ".join(r.message for r in outcome.reasons),
                })
            return redirect("portal:caregivers")
    accesses = [
        a for a in representatives.accesses_of_patient(patient) if a.status in (AccessStatus.INVITED, AccessStatus.ACTIVE)
    ]
    return render(request, "portal/caregivers.html", {
        "patient": patient, "practice": practice, "form": form, "accesses": accesses,
    }, status=400 if form.errors else 200)


@patient_required
@require_POST
def revoke_caregiver(request: HttpRequest, patient, access_id: int) -> HttpResponse:
    """Revoke at once: the representative's next page no longer opens this portal."""
    if not may_manage_caregivers(request.record, timezone.now()):
        return render(request, "portal/not_a_patient.html", status=403)
    access = get_object_or_404(representatives.accesses_of_patient(patient), pk=access_id)  # another patient's: 404
    if representatives.revoke(access, now=timezone.now(), actor=request.user, by_patient=True):
        messages.success(request, gettext("%(name)s no longer has access to your portal.") % {"name": access.representative.full_name})
    return redirect("portal:caregivers")
