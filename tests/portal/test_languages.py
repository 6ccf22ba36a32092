"""The patient's pages in the patient's language: the catalogs are complete and compiled, every page
and email in Spanish holds none of the English sentences, the link opens in the invitation's
language, the switch is remembered, and the staff admin stays English."""

import datetime
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from core import catalogs, languages
from invitations.models import Invitation
from patients.models import Patient
from tests.factories import PatientFactory, PracticeFactory
from tests.invitations.factories import invitation_with_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]
User = get_user_model()
PASSWORD = "correct horse battery 42"
SPANISH = {settings.LANGUAGE_COOKIE_NAME: "es"}


def spanish_catalog() -> list[catalogs.Entry]:
    path = Path(settings.LOCALE_PATHS[0]) / "es" / "LC_MESSAGES" / "django.po"
    return catalogs.parse(path.read_text(encoding="utf-8"))


def english_sentences() -> list[str]:
    """The English of every translated sentence (as a page shows it: no placeholders), long
    enough not to be a word Spanish shares."""
    sentences = []
    for entry in spanish_catalog():
        if entry.is_header or entry.msgid == entry.msgstr.get(0):
            continue
        for piece in re.split(r"%\(\w+\)[sd]|<[^>]+>|\[[^\]]+\]", entry.msgid):
            piece = piece.strip(" .,:;?!\"'")
            if len(piece) >= 14 and " " in piece:
                sentences.append(piece)
    return sentences


def assert_no_english(content: str, where: str) -> None:
    content = re.sub(r"\s+", " ", content)
    found = [sentence for sentence in english_sentences() if sentence in content]
    assert found == [], f"English on {where}: {found}"


# -- the catalogs ---------------------------------------------------------------------------------


def test_every_compiled_catalog_is_what_its_po_file_compiles_to():
    pos = catalogs.catalogs()
    assert [po.parent.parent.name for po in pos] == [code for code in languages.codes() if code != "en"]
    for po in pos:
        mo = po.with_suffix(".mo")
        assert mo.exists(), f"{mo} is missing: run manage.py compile_catalogs"
        assert mo.read_bytes() == catalogs.compile_po(po.read_text(encoding="utf-8")), (
            f"{mo} is out of date: run manage.py compile_catalogs"
        )


def test_no_patient_facing_string_is_untranslated_or_fuzzy():
    problems = [
        f"line {entry.line}: {entry.msgid[:60]!r} ({'fuzzy' if entry.fuzzy else 'untranslated'})"
        for entry in spanish_catalog()
        if not entry.is_header and (entry.fuzzy or not entry.translated)
    ]
    assert problems == []


def test_the_compiler_refuses_nothing_gettext_reads():
    """What the pure-Python compiler writes is what Python's gettext reads back, fuzzy entries left out."""
    import gettext
    import io

    po = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Hello"\nmsgstr "Hola"\n\n' \
        'msgctxt "menu"\nmsgid "File"\nmsgstr "Archivo"\n\n#, fuzzy\nmsgid "Later"\nmsgstr "Luego"\n\n' \
        'msgid "one day"\nmsgid_plural "%(n)d days"\nmsgstr[0] "un día"\nmsgstr[1] "%(n)d días"\n'
    translations = gettext.GNUTranslations(io.BytesIO(catalogs.compile_po(po)))
    assert translations.gettext("Hello") == "Hola"
    assert translations.pgettext("menu", "File") == "Archivo"
    assert translations.gettext("Later") == "Later"
    assert translations.ngettext("one day", "%(n)d days", 3) == "%(n)d días"
    assert [e.fuzzy for e in catalogs.parse(po)] == [False, False, False, True, False]


def test_a_language_is_read_as_people_write_it():
    for value in ("es", "ES", "spa", "Spanish", "spanish", "Español", "espanol", " castellano ", "es-MX"):
        assert languages.read(value) == "es", value
    for value in ("en", "eng", "English", "inglés", "en-US"):
        assert languages.read(value) == "en", value
    for value in ("", "Klingon", "fr", "xx"):
        assert languages.read(value) is None


# -- every page in Spanish ------------------------------------------------------------------------


@pytest.fixture
def valle_clinic():
    return PracticeFactory(name="Clínica del Valle", contact_phone="(617) 555-0142", contact_email="hola@valle.example",
                           self_signup_enabled=True)


def registered_ana(practice, username="ana.r", **fields):
    patient = PatientFactory(practice=practice, first_name="Ana", last_name="Ruiz", preferred_language="es", **fields)
    patient.portal_user = User.objects.create_user(username, email=patient.email, password=PASSWORD, first_name="Ana")
    patient.save()
    return patient


def test_every_patient_page_in_spanish_holds_no_english_sentence(client, valle_clinic):
    client.cookies.load(SPANISH)
    invitation, token = invitation_with_token(patient=PatientFactory(practice=valle_clinic, last_name="Ruiz"))
    used, used_token = invitation_with_token(patient=PatientFactory(practice=valle_clinic))
    Invitation.objects.filter(pk=used.pk).update(status="accepted")
    pages = {
        "registration": client.get(reverse("portal:register", args=[token])),
        "registration with errors": client.post(
            reverse("portal:register", args=[token]),
            {"last_name": "Otro", "date_of_birth": "17/05/1980", "username": "ana.r", "password1": "x", "password2": "y"},
        ),
        "wrong answer": client.post(
            reverse("portal:register", args=[token]),
            {"last_name": "Otro", "date_of_birth": "17/05/1980", "username": "ana.r", "password1": PASSWORD, "password2": PASSWORD},
        ),
        "unknown link": client.get(reverse("portal:register", args=["nope" * 10])),
        "used link": client.get(reverse("portal:register", args=[used_token])),
        "sign-in": client.get(reverse("portal:login")),
        "sign-in refused": client.post(reverse("portal:login"), {"username": "nobody", "password": "wrong"}),
        "password reset": client.get(reverse("portal:password_reset")),
        "password reset sent": client.get(reverse("portal:password_reset_done")),
        "bad reset link": client.get(reverse("portal:password_reset_confirm", args=["MQ", "set-password"])),
        "password changed": client.get(reverse("portal:password_reset_complete")),
        "request access": client.get(reverse("portal:request_access", args=[valle_clinic.pk])),
        "request access errors": client.post(reverse("portal:request_access", args=[valle_clinic.pk]), {"email": "nope"}),
    }
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=invitation.created_at)
    pages["expired link"] = client.get(reverse("portal:register", args=[token]))
    Invitation.objects.filter(pk=invitation.pk).update(status="revoked", revoke_reason="staff")
    pages["voided link"] = client.get(reverse("portal:register", args=[token]))
    registered_ana(valle_clinic)
    client.post(reverse("portal:login"), {"username": "ana.r", "password": PASSWORD})
    pages["email preferences"] = client.get(reverse("portal:email_preferences"))
    for where, response in pages.items():
        assert response.status_code in (200, 400, 404, 410), where
        content = response.content.decode()
        assert '<html lang="es">' in content, where
        assert response["Content-Language"] == "es", where
        assert_no_english(content, where)
    assert "Cree su cuenta del portal" in pages["registration"].content.decode()
    assert "No pudimos confirmar sus datos" in pages["wrong answer"].content.decode()


def test_the_password_reset_email_is_in_each_account_holders_language(client, valle_clinic, eager_celery, django_capture_on_commit_callbacks):
    ana = registered_ana(valle_clinic, email="familia@example.com")
    english = PatientFactory(practice=valle_clinic, first_name="Tom", email="familia@example.com", preferred_language="en")
    english.portal_user = User.objects.create_user("tom.r", email="familia@example.com", password=PASSWORD)
    english.save()
    with django_capture_on_commit_callbacks(execute=True):  # a worker sends it, after commit
        client.post(reverse("portal:password_reset"), {"email": "familia@example.com"})
    by_user = {message.body.split('"')[1]: message for message in mail.outbox}
    assert by_user["ana.r"].subject == "Restablezca la contraseña de su portal del paciente"
    assert_no_english(by_user["ana.r"].body, "the Spanish reset email")
    assert by_user["tom.r"].subject == "Reset your patient portal password"
    assert ana.preferred_language == "es"


# -- which language a page is in ------------------------------------------------------------------


def test_a_link_opens_in_the_invitations_language_and_a_choice_made_on_this_browser_wins(client, valle_clinic):
    patient = PatientFactory(practice=valle_clinic, preferred_language="es")
    invitation, token = invitation_with_token(patient=patient)
    assert invitation.language == "es"
    page = client.get(reverse("portal:register", args=[token]), HTTP_ACCEPT_LANGUAGE="en-US")
    assert '<html lang="es">' in page.content.decode()
    switched = client.post(reverse("portal:language"), {"language": "en", "next": reverse("portal:register", args=[token])})
    assert switched.status_code == 302 and switched["Location"] == reverse("portal:register", args=[token])
    assert switched.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert '<html lang="en">' in client.get(reverse("portal:register", args=[token])).content.decode()


def test_a_browser_without_a_choice_gets_its_own_language_on_other_pages(client):
    assert '<html lang="es">' in client.get(reverse("portal:login"), HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9").content.decode()
    assert '<html lang="en">' in client.get(reverse("portal:login"), HTTP_ACCEPT_LANGUAGE="fr-FR").content.decode()


def test_the_switch_is_remembered_on_the_account_and_goes_back_only_to_this_site(client, valle_clinic):
    patient = registered_ana(valle_clinic)
    client.post(reverse("portal:login"), {"username": "ana.r", "password": PASSWORD})
    response = client.post(reverse("portal:language"), {"language": "en", "next": reverse("portal:home")})
    assert response["Location"] == reverse("portal:home")
    patient.refresh_from_db()
    assert patient.preferred_language == "en"
    client.cookies.load(SPANISH)  # another browser's choice: the account's language wins once signed in
    assert '<html lang="en">' in client.get(reverse("portal:email_preferences")).content.decode()
    elsewhere = client.post(reverse("portal:language"), {"language": "es", "next": "https://evil.example/"})
    assert elsewhere["Location"] == reverse("portal:login")
    unknown = client.post(reverse("portal:language"), {"language": "xx", "next": reverse("portal:home")})
    assert unknown.status_code == 302 and Patient.objects.get(pk=patient.pk).preferred_language == "es"
    assert client.get(reverse("portal:language")).status_code == 405


def test_registering_keeps_the_language_the_patient_registered_in(client, valle_clinic):
    patient = PatientFactory(practice=valle_clinic, last_name="Ruiz", date_of_birth=datetime.date(1980, 5, 17), preferred_language="en")
    _, token = invitation_with_token(patient=patient)
    client.cookies.load(SPANISH)
    response = client.post(reverse("portal:register", args=[token]), {
        "last_name": "Ruiz", "date_of_birth": "17/05/1980", "username": "ana.r", "password1": PASSWORD, "password2": PASSWORD,
    })
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.preferred_language == "es" and patient.portal_user is not None


def test_dates_are_typed_in_the_languages_order(client, valle_clinic):
    patient = PatientFactory(practice=valle_clinic, last_name="Ruiz", date_of_birth=datetime.date(1980, 5, 4))
    _, token = invitation_with_token(patient=patient)
    english = client.post(reverse("portal:register", args=[token]), {
        "last_name": "Ruiz", "date_of_birth": "04/05/1980", "username": "ana.r", "password1": PASSWORD, "password2": PASSWORD,
    })
    assert english.status_code == 400  # April 5th in English: not the chart's date
    client.cookies.load(SPANISH)
    spanish = client.post(reverse("portal:register", args=[token]), {
        "last_name": "Ruiz", "date_of_birth": "04/05/1980", "username": "ana.r", "password1": PASSWORD, "password2": PASSWORD,
    })
    assert spanish.status_code == 302  # 4 de mayo


def test_the_staff_admin_stays_english(admin_client):
    admin_client.cookies.load(SPANISH)
    response = admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="es")
    assert '<html lang="en-us"' in response.content.decode() and "Cerrar" not in response.content.decode()


# -- what a screen-reader or keyboard user meets after a failed submit ----------------------------


def test_a_wrong_answer_is_announced_and_tied_to_both_fields(client, valle_clinic):
    _, token = invitation_with_token(patient=PatientFactory(practice=valle_clinic, last_name="Ruiz"))
    response = client.post(reverse("portal:register", args=[token]), {
        "last_name": "Otro", "date_of_birth": "05/17/1980", "username": "ana.r", "password1": PASSWORD, "password2": PASSWORD,
    })
    content = response.content.decode()
    assert response.status_code == 400
    assert "<title>Error: Set up your portal account" in content
    assert 'id="error-summary" tabindex="-1"' in content and ".focus()" in content
    assert '<li id="identity-error">We could not confirm your details.' in content
    for field in ("last_name", "date_of_birth"):
        tag = re.search(rf'<input[^>]*id="id_{field}"[^>]*>', content).group(0)
        assert 'aria-invalid="true"' in tag and 'aria-describedby="identity-error' in tag
    assert "the two password boxes were emptied" in content
    assert 'value="' + PASSWORD not in content


def test_a_field_error_is_linked_from_the_summary(client, valle_clinic):
    _, token = invitation_with_token(patient=PatientFactory(practice=valle_clinic))
    content = client.post(reverse("portal:register", args=[token]), {"last_name": "", "date_of_birth": "someday"}).content.decode()
    assert '<a href="#id_last_name">Last name: This field is required.</a>' in content
    assert '<a href="#id_date_of_birth">Date of birth: Enter the date as in the example' in content
    tag = re.search(r'<input[^>]*id="id_date_of_birth"[^>]*>', content).group(0)
    assert 'type="text"' in tag and 'inputmode="numeric"' in tag and 'aria-invalid="true"' in tag


def test_a_spanish_access_request_makes_a_spanish_chart_and_a_spanish_email(client, valle_clinic, eager_celery, django_capture_on_commit_callbacks):
    client.cookies.load(SPANISH)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portal:request_access", args=[valle_clinic.pk]), {
            "first_name": "Lucía", "last_name": "Pérez", "date_of_birth": "17/05/1980", "email": "lucia@example.com",
            "zip_code": "02139", "birth_sex": "F",
        })
    assert response.status_code == 200
    patient = valle_clinic.patients.get(email="lucia@example.com")
    assert patient.preferred_language == "es"
    [message] = mail.outbox
    assert message.subject == "Su invitación al portal del paciente de Clínica del Valle"
