"""Every patient page and state, in English and in Spanish, passes axe-core's WCAG 2.1 A and AA
rules in Chromium (a parent's registration for a child and the portal with the record switch, an
adult's caregivers, the too-many-tries and no-record-of-one's-own pages included); a keyboard-only
registration with a wrong answer lands on the error summary, and the focus ring can be seen (3:1
against the white card) on every control."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core import throttle
from invitations import representatives
from invitations.models import Invitation, RevokeReason, Status, hash_token
from tests.e2e.accessibility import violations
from tests.factories import PatientFactory, PracticeFactory
from tests.family_factories import AccessFactory, RepresentativeFactory, child
from tests.invitations.factories import invitation_with_token

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "sunny garden path 77"
DATE_OF_BIRTH = datetime.date(1984, 11, 3)


def in_language(page, live_server, language: str) -> None:
    page.context.add_cookies([{"name": "portal_language", "value": language, "url": live_server.url}])


def fill_registration(page, *, last_name: str, date_of_birth: str) -> None:
    page.fill("#id_last_name", last_name)
    page.fill("#id_date_of_birth", date_of_birth)
    page.fill("#id_username", "zoe.q")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_patient_page_and_state_passes_wcag_21_aa(page, live_server, language, monkeypatch):
    in_language(page, live_server, language)
    base, now = live_server.url, datetime.datetime.now(datetime.timezone.utc)
    practice = PracticeFactory(name="Clínica Maple", contact_phone="(617) 555-0142", contact_email="hola@maple.example",
                               self_signup_enabled=True)
    patient = PatientFactory(practice=practice, first_name="Zoë", last_name="Quintanilla", date_of_birth=DATE_OF_BIRTH,
                             preferred_language=language)
    _, token = invitation_with_token(patient=patient, created_at=now)
    found: dict[str, list[str]] = {}

    def check(state: str) -> None:
        assert page.get_attribute("html", "lang") == language, state
        found[state] = violations(page)

    page.goto(f"{base}/invite/{token}/")
    check("registration")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("registration, nothing filled in")
    fill_registration(page, last_name="Quintana", date_of_birth="1984-11-03")
    check("registration, details not confirmed")

    page.goto(f"{base}/invite/{'unknown' * 6}/")
    check("unknown link")
    for state, fields in (
        ("used link", {"status": Status.ACCEPTED}),
        ("expired link", {"created_at": now - datetime.timedelta(days=8)}),
        ("voided link", {"status": Status.REVOKED, "revoke_reason": RevokeReason.TOO_MANY_ATTEMPTS}),
    ):
        _, other = invitation_with_token(patient=PatientFactory(practice=practice), **{"created_at": now, **fields})
        page.goto(f"{base}/invite/{other}/")
        check(state)

    page.goto(f"{base}/portal/login/")
    check("sign-in")
    page.fill("#id_username", "nobody")
    page.fill("#id_password", "wrong password")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("sign-in refused")

    page.goto(f"{base}/portal/password-reset/")
    check("password reset")
    page.fill("#id_email", "not an address")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("password reset, address not valid")
    page.fill("#id_email", "someone@example.com")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("password reset sent")
    page.goto(f"{base}/portal/reset/MQ/not-a-token/")
    check("reset link that does not work")

    user = get_user_model().objects.create_user("zoe.q", email=patient.email, password=PASSWORD, first_name="Zoë")
    patient.portal_user = user
    patient.save()
    page.goto(f"{base}/portal/reset/{urlsafe_base64_encode(force_bytes(user.pk))}/{default_token_generator.make_token(user)}/")
    check("choose a new password")
    page.fill("#id_new_password1", "short")
    page.fill("#id_new_password2", "other")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("choose a new password, refused")
    page.fill("#id_new_password1", PASSWORD + "!")
    page.fill("#id_new_password2", PASSWORD + "!")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("password changed")

    page.goto(f"{base}/practices/{practice.pk}/request-access/")
    check("request access")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("request access, nothing filled in")
    page.fill("#id_first_name", "Noah")
    page.fill("#id_last_name", "Kim")
    page.fill("#id_date_of_birth", "1990-02-03")
    page.fill("#id_email", "noah.kim@example.com")
    page.fill("#id_zip_code", "60601")
    page.select_option("#id_birth_sex", "M")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    check("request access sent")

    page.goto(f"{base}/portal/login/")
    page.fill("#id_username", "zoe.q")
    page.fill("#id_password", PASSWORD + "!")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/portal/")
    check("portal home")
    page.goto(f"{base}/portal/email-preferences/")
    check("email preferences")
    page.goto(f"{base}/portal/caregivers/")
    check("caregivers")
    page.click("form[novalidate] button[type=submit]")
    page.wait_for_load_state()
    check("caregivers, nothing filled in")

    # A login whose patient record is no longer its own (the access ended while signed in).
    patient.portal_user = None
    patient.save()
    assert page.goto(f"{base}/portal/").status == 403
    check("signed in, no record of one's own")

    # A parent invited for two children: the representative's registration, then the portal with
    # whose record is open and the switch between the two.
    parent = RepresentativeFactory(practice=practice, first_name="Elena")
    lucia, pablo = (child(practice, first_name=name, last_name="Quintanilla") for name in ("Lucía", "Pablo"))
    parent_links = {}
    for kid in (lucia, pablo):
        invitation = representatives.invite(AccessFactory(patient=kid, representative=parent), now=now).invitation
        parent_links[kid] = f"rep-token-{invitation.pk:06d}-abcdefghijklmnopqrstuvwxyz"
        Invitation.objects.filter(pk=invitation.pk).update(
            token_hash=hash_token(parent_links[kid]), status=Status.SENT, sent_at=now,
        )
    page.context.clear_cookies()
    in_language(page, live_server, language)
    page.goto(f"{base}/invite/{parent_links[lucia]}/")
    check("representative's registration")
    page.click("form[novalidate] button[type=submit]")
    page.wait_for_load_state()
    check("representative's registration, nothing filled in")
    page.fill("#id_last_name", "Quintanilla")
    page.fill("#id_date_of_birth", lucia.date_of_birth.isoformat())
    page.fill("#id_username", "elena.q")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("form[novalidate] button[type=submit]")
    page.wait_for_selector(".record-bar")
    check("portal home, a parent for one child")
    page.goto(f"{base}/invite/{parent_links[pablo]}/")
    check("representative's registration, signed in")
    page.fill("#id_last_name", "Quintanilla")
    page.fill("#id_date_of_birth", pablo.date_of_birth.isoformat())
    page.click("form[novalidate] button[type=submit]")
    page.wait_for_selector("#record-switch")
    check("portal home, a parent of two, with the switch")

    monkeypatch.setattr(throttle, "allow", lambda *args, **kwargs: False)  # this address tried too often
    assert page.goto(f"{base}/invite/{token}/").status == 429
    check("too many tries")

    assert {state: problems for state, problems in found.items() if problems} == {}
    assert len(found) == 30


def test_a_keyboard_only_registration_with_a_wrong_answer_lands_on_the_error_summary(page, live_server):
    practice = PracticeFactory(name="Maple Street Dental")
    patient = PatientFactory(practice=practice, last_name="Quintanilla", date_of_birth=DATE_OF_BIRTH)
    _, token = invitation_with_token(patient=patient, created_at=datetime.datetime.now(datetime.timezone.utc))
    page.goto(f"{live_server.url}/invite/{token}/")
    focused = lambda: page.evaluate("() => document.activeElement.id")  # noqa: E731

    for _ in range(8):  # from the top of the page to the form (the language switch is in the footer)
        page.keyboard.press("Tab")
        if focused() == "id_last_name":
            break
    assert focused() == "id_last_name"
    page.keyboard.type("Quintana")
    page.keyboard.press("Tab")
    assert focused() == "id_date_of_birth"
    page.keyboard.type("11/03/1984")
    page.keyboard.press("Tab")
    assert focused() == "id_username"  # the date is one tab stop, no calendar button
    page.keyboard.type("zoe.q")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    assert focused() == "error-summary"
    assert page.title().startswith("Error: ")
    summary = page.inner_text("#error-summary")
    assert "We could not confirm your details" in summary and "type your password in both again" in summary
    for field in ("#id_last_name", "#id_date_of_birth"):
        assert page.get_attribute(field, "aria-invalid") == "true"
        assert "identity-error" in page.get_attribute(field, "aria-describedby")
    assert page.input_value("#id_password1") == ""

    # The focus ring on the next control is drawn, and stands out 3:1 from the white card.
    page.keyboard.press("Tab")
    ring = page.evaluate("() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth, s.outlineColor]; }")
    assert ring[0] == "solid" and ring[1] == "3px"
    assert contrast(ring[2], "rgb(255, 255, 255)") >= 3


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""

    def luminance(colour: str) -> float:
        channels = [int(part) / 255 for part in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_axe_does_report_what_breaks_the_rules(page, live_server):
    """The checks above can fail: an input without a label and grey-on-white text are reported."""
    page.goto(f"{live_server.url}/portal/login/")
    page.evaluate("""() => {
        document.querySelector("main").insertAdjacentHTML("beforeend", '<input id="unlabelled"><p style="color:#bbb">faint</p>');
    }""")
    found = " ".join(violations(page))
    assert "label (critical)" in found and "color-contrast (serious)" in found
