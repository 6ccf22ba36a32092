"""Activate Now for one practice (its admins and managers): the preview (who will be invited, by
which channel, who is skipped and why), the confirmation that starts the run, and the progress page
with its live bar (any run's: Activate Now, the monthly re-invite, a resend run)."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from patients.models import BulkChannels, Practice

from invitations import adoption, eligibility
from invitations.bulk import runs
from invitations.models.bulk_runs import BulkRun
from invitations.admin.permissions import can_manage_portal
from invitations.vocabulary import Channel


def _duration(seconds) -> str:
    """"about 3 minutes", for the estimated time left ("" when unknown)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"about {round(minutes / 60, 1):g} hours"


#: What a skip reason holds back (an eligibility rule's channel).
CHANNEL_OF_RULE = {"": "The invitation", Channel.EMAIL: "The email", Channel.TEXT: "The text"}

#: How the preview's first line names each reason a patient is skipped, as people say it ("41 no
#: email address, 30 opted out of email"); a rule not listed is named by its own message.
SKIP_IN_WORDS = {
    "invitations_disabled": "portal invitations turned off", "activation_email_disabled": "activation email turned off",
    "registered": "already registered", "deceased": "deceased", "missing_first_name": "no first name",
    "missing_last_name": "no last name", "missing_date_of_birth": "no date of birth", "missing_zip_code": "no ZIP code",
    "missing_email": "no email address", "missing_birth_sex": "no birth sex", "invalid_email": "an email address that is not valid",
    "no_consent": "no email consent", "opted_out": "opted out of email", "hard_bounce": "email bounced",
    "open_invitation": "a link already out", "invited_recently": "invited in the last hour",
    "texts_disabled": "texts turned off", "missing_mobile": "no mobile number", "invalid_mobile": "a mobile number that is not valid",
    "no_sms_consent": "no text consent", "sms_opted_out": "replied STOP to texts", "undeliverable_mobile": "texts not deliverable",
    "texted_recently": "texted in the last hour", "child_no_own_account": "too young for an own account",
    "email_is_representatives": "a representative's email address", "mobile_is_representatives": "a representative's mobile number",
    # A child too young for their own account is invited through their parents and guardians.
    "child_no_representative": "a child with no parent or guardian on file",
    "representative_linked": "a child whose parent or guardian already signs in", "family_access_disabled": "family access turned off",
    "access_ended": "a parent's or guardian's access ended", "patient_deceased": "deceased",
    "patient_missing_last_name": "a child with no last name", "patient_missing_date_of_birth": "a child with no date of birth",
    "adult_without_consent": "an adult's consent not on file",
    "representative_missing_email": "a parent or guardian with no email address",
    "representative_invalid_email": "a parent's or guardian's email address that is not valid",
    "representative_opted_out": "a parent or guardian opted out of email",
    "representative_open_invitation": "a parent's or guardian's link already out",
    "representative_invited_recently": "a parent or guardian invited in the last hour",
    "representative_missing_mobile": "a parent or guardian with no mobile number",
    "representative_invalid_mobile": "a parent's or guardian's mobile number that is not valid",
    "representative_no_sms_consent": "a parent or guardian with no text consent",
    "representative_sms_opted_out": "a parent or guardian who replied STOP to texts",
    "representative_texted_recently": "a parent or guardian texted in the last hour",
}


def skipped_in_words(reasons) -> list[tuple[int, str]]:
    """(count, "no email address") for each (rule, count) of a preview, in its order."""
    return [(count, SKIP_IN_WORDS.get(rule.code, rule.message.rstrip("."))) for rule, count in reasons]


def _text_totals(run: BulkRun, totals: dict) -> dict:
    """{"texts_sent": n, "texts_failed": n} for a run that sends texts (its channels say so, or
    it has sent or failed some), once the chunk totals count texts; else nothing."""
    if "texts_sent" not in totals:
        return {}
    texts = {"texts_sent": totals.get("texts_sent", 0), "texts_failed": totals.get("texts_failed", 0)}
    if getattr(run, "channels", BulkChannels.EMAIL) == BulkChannels.EMAIL and not any(texts.values()):
        return {}
    return texts


class ActivateNowViews:
    """Activate Now's pages, served by `invitations.admin.bulk_runs.BulkRunAdmin` (which supplies
    `_practice`, `_run` and `_context`)."""

    def activate_view(self, request: HttpRequest, practice_id: int):
        practice = self._practice(request, practice_id)
        if not can_manage_portal(request.user, practice.pk):
            raise PermissionDenied("Activate Now is for the practice's admins and managers.")
        running = runs.running_run(practice)
        if request.method == "POST":
            return self._start(request, practice)
        now = timezone.now()
        # Up to a few tens of thousands of inactive patients the preview is counted live (exact,
        # well under a second); above that the stored figures' preview is shown with the time it
        # was counted, since the run checks every patient again when it is planned.
        snapshot = adoption.current(practice, now=now)
        live = snapshot.preview.considered <= adoption.live_preview_max_inactive()
        # Both count with the practice's channels for bulk runs (`eligibility.bulk_plan`).
        preview = runs.preview(practice, now=now) if live else snapshot.preview
        return TemplateResponse(
            request, "admin/invitations/activate_now.html",
            self._context(
                request, f"Activate Now: {practice.name}", practice=practice, preview=preview, running=running,
                snapshot=None if live else snapshot,
                emails=preview.eligible if preview.emails is None else preview.emails, texts=preview.texts,
                texts_off=practice.bulk_channels != BulkChannels.EMAIL and not practice.text_invitations_enabled,
                reasons=[(rule, count, CHANNEL_OF_RULE[rule.channel]) for rule, count in preview.reasons],
                skipped_in_words=skipped_in_words(preview.reasons),
                language_fallbacks=runs.language_fallbacks(practice, now=now) if preview.eligible + preview.representatives else [],
                template_url=reverse("admin:invitations_portal_template", args=[practice.pk]),
                dashboard_url=reverse("admin:invitations_portal_dashboard", args=[practice.pk]),
            ),
        )

    def _start(self, request: HttpRequest, practice: Practice):
        dashboard_url = reverse("admin:invitations_portal_dashboard", args=[practice.pk])
        try:
            run = runs.start_run(practice=practice, now=timezone.now(), actor=request.user, plan_later=True)
        except runs.RunAlreadyRunning:
            running = runs.running_run(practice)
            self.message_user(
                request,
                "Activate Now is already running for this practice; it was not started again. "
                "Wait for the run below to finish.",
                messages.ERROR,
            )
            if running is not None:
                return HttpResponseRedirect(reverse("admin:invitations_bulkrun_progress", args=[running.pk]))
            return HttpResponseRedirect(dashboard_url)
        self.message_user(request, "Activate Now started. The figures below update as it runs.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:invitations_bulkrun_progress", args=[run.pk]))

    @staticmethod
    def progress_data(run: BulkRun) -> dict:
        """The progress page's figures (and its JSON). Texts sent and failed are there for a run
        that texts (and once the chunks count them)."""
        progress = runs.run_progress(run, now=timezone.now())
        totals = progress.totals
        processed = totals["processed"]
        if not run.is_planned:
            percent = 0
        elif not run.targeted:
            percent = 100
        else:
            percent = min(100, int(100 * processed / run.targeted)) if run.is_running else 100
        return {
            "status": run.status,
            "planned": run.is_planned,
            "finished": not run.is_running,
            "targeted": run.targeted,
            "processed": processed,
            "invited": totals["invited"],
            "sent": totals["sent"],
            "failed": totals["failed"],
            # Per channel, for the summary: an invitation by email and text counts under each.
            "emails_sent": totals["emails_sent"],
            "emails_failed": totals["emails_failed"],
            "waiting": totals["waiting"],
            "skipped": totals["skipped"],
            "skipped_at_plan": run.skipped_at_plan,
            "chunks": totals["chunks"],
            "chunks_done": totals["chunks_done"],
            "percent": percent,
            "rate": None if progress.rate is None else round(progress.rate, 1),
            "seconds_left": None if progress.seconds_left is None else round(progress.seconds_left),
            "time_left": _duration(progress.seconds_left),
            "send_problem": progress.problem,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            **_text_totals(run, totals),
        }

    def progress_view(self, request: HttpRequest, run_id: int):
        run = self._run(request, run_id)
        data = self.progress_data(run)
        reasons = [
            (eligibility.BULK_RULES_BY_CODE[code].message, count)
            for code, count in sorted(run.skip_counts.items(), key=lambda item: -item[1])
            if code in eligibility.BULK_RULES_BY_CODE and count
        ]
        return TemplateResponse(
            request, "admin/invitations/bulkrun/progress.html",
            self._context(
                request, f"{run.get_kind_display()}: {run.practice.name}", run=run, progress=data, reasons=reasons,
                json_url=reverse("admin:invitations_bulkrun_progress_json", args=[run.pk]),
                dashboard_url=reverse("admin:invitations_portal_dashboard", args=[run.practice_id]),
            ),
        )

    def progress_json_view(self, request: HttpRequest, run_id: int):
        run = self._run(request, run_id)
        return JsonResponse(self.progress_data(run))
