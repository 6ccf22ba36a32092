"""The portal itself, for a signed-in patient: the home page and email preferences."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from core.phones import display_phone
from invitations import services
from patients.models import EmailOptOut, OptOutReason, Patient
from patients.models.representatives import AccessLevel
from portal import records
from portal.pages import family
from portal.guards import patient_required


@patient_required
def home(request: HttpRequest, patient: Patient) -> HttpResponse:
    record = request.record
    show = {section: records.shows(record, section) for section in records.SECTIONS[AccessLevel.FULL]}
    # Email preferences are about the address on the chart: without one there is nothing to stop.
    show["email_preferences"] = show.get("email_preferences", False) and bool(patient.email)
    return render(request, "portal/home.html", {
        "patient": patient, "practice": patient.practice, "show": show,
        # The mobile number the practice texts, as the patient writes it ("(617) 555-0123").
        "mobile": display_phone(patient.mobile_phone, patient.practice.country) if patient.mobile_phone else "",
        "may_manage_caregivers": family.may_manage_caregivers(record, timezone.now()),
    })


@patient_required(section="email_preferences")
@require_http_methods(["GET", "POST"])
def email_preferences(request: HttpRequest, patient: Patient) -> HttpResponse:
    practice = patient.practice
    entry = EmailOptOut.objects.matching(practice.pk, patient.email).first() if patient.email else None
    if request.method == "POST" and patient.email:
        action = request.POST.get("action")
        if action == "stop" and entry is None:
            services.opt_out(practice=practice, email=patient.email, now=timezone.now())
            messages.success(
                request,
                gettext("Done: %(practice)s will not email %(email)s any more.") % {"practice": practice.name, "email": patient.email},
            )
        elif action == "resume" and entry is not None and entry.reason == OptOutReason.PATIENT_REQUEST:
            services.opt_back_in(entry, now=timezone.now())
            messages.success(request, gettext("%(practice)s may email you again.") % {"practice": practice.name})
        return redirect("portal:email_preferences")
    return render(
        request,
        "portal/email_preferences.html",
        {
            "patient": patient,
            "practice": practice,
            "opted_out": entry is not None,
            "can_resume": entry is not None and entry.reason == OptOutReason.PATIENT_REQUEST,
        },
    )
