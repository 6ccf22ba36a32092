"""Forms of the public pages: registration, portal login and password reset, access requests.

Every word a patient reads here is translated (the active language is the patient's: see
`portal.language`), and dates are typed in the order of that language (05/17/1980 in English,
17/05/1980 in Spanish; 1980-05-17 in either) in a plain text box: one tab stop and a hint in the
patient's language, where the browser's date picker gave four and a US-only one.
"""

import datetime
import re

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, SetPasswordForm
from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import get_language, gettext, gettext_lazy as _, pgettext_lazy

from core import languages
from patients.models import MAX_AGE_YEARS, normalise_email

User = get_user_model()

#: How a date of birth may be typed, per language (the language's own order first, then ISO).
DATE_INPUT_FORMATS = {
    "en": ["%m/%d/%Y", "%Y-%m-%d", "%m-%d-%Y", "%m.%d.%Y"],
    "es": ["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"],
}
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
IDENTITY_MISMATCH = _(
    "We could not confirm your details. Check your last name and date of birth as the practice "
    "has them, and try again."
)
PASSWORDS_CLEARED = _("For your security the two password boxes were emptied: type your password in both again.")


def date_input_formats() -> list[str]:
    return DATE_INPUT_FORMATS.get((get_language() or "en").split("-")[0], DATE_INPUT_FORMATS["en"])


class DateOfBirthInput(forms.TextInput):
    """A date as text, shown in the language's order; `inputmode` gives phones the number pad."""

    def __init__(self, attrs=None):
        super().__init__({"autocomplete": "bday", "inputmode": "numeric", "size": 10, **(attrs or {})})

    def format_value(self, value):
        if isinstance(value, datetime.date):
            return value.strftime(date_input_formats()[0])
        return super().format_value(value)


class DateOfBirthField(forms.DateField):
    widget = DateOfBirthInput

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Date of birth"))
        kwargs.setdefault("help_text", _("Month, day and year, for example 05/17/1980."))
        kwargs.setdefault("error_messages", {"invalid": _("Enter the date as in the example, for example 05/17/1980.")})
        super().__init__(**kwargs)

    def to_python(self, value):
        # The language is the request's: the formats are chosen when the form is checked.
        self.input_formats = date_input_formats()
        return super().to_python(value)


class RegistrationForm(forms.Form):
    last_name = forms.CharField(
        label=_("Last name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )
    date_of_birth = DateOfBirthField()
    username = forms.CharField(
        label=_("Username"),
        max_length=40,
        help_text=_("You will sign in with this. 3 to 40 letters, digits, dots, dashes or underscores."),
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
    )
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, invitation, **kwargs):
        self.invitation = invitation
        super().__init__(*args, **kwargs)
        # Django's validators word their help in the active language (their catalogs ship with Django).
        self.fields["password1"].help_text = password_validation.password_validators_help_text_html()

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip().lower()
        if not USERNAME_RE.match(username):
            raise forms.ValidationError(
                _("Use 3 to 40 characters: letters, digits, dots, dashes or underscores, starting with a letter or digit.")
            )
        # Whether it is free is told only once the last name and date of birth matched
        # (services.attempt_registration): a link holder learns nothing about other accounts.
        return username

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords do not match."))
        elif first:
            # Only what the patient already knows from the email goes into the similarity check.
            probe = User(
                username=cleaned.get("username") or "",
                first_name=self.invitation.patient.first_name,
                email=self.invitation.email,
            )
            try:
                password_validation.validate_password(first, user=probe)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned

    def identity_not_confirmed(self) -> None:
        """The last name and date of birth did not match: one message for the form (the page never
        says which one was wrong), tied to both fields for screen readers."""
        self.add_error(None, IDENTITY_MISMATCH)
        self.identity_error = True
        for name in ("last_name", "date_of_birth"):
            described = ["identity-error"] + ([f"id_{name}_helptext"] if self.fields[name].help_text else [])
            self.fields[name].widget.attrs.update({"aria-invalid": "true", "aria-describedby": " ".join(described)})

    passwords_cleared_message = PASSWORDS_CLEARED

    @property
    def passwords_cleared(self) -> bool:
        """The page comes back with errors after passwords were typed: browsers never get them
        back, and the page says so."""
        return self.is_bound and bool(self.errors) and bool(self.data.get("password1") or self.data.get("password2"))


def is_portal_login(user) -> bool:
    """A patient's own login, or a representative's (a parent, guardian or caregiver who linked one)."""
    return hasattr(user, "patient_record") or user.representing.exists()


class PatientAuthenticationForm(AuthenticationForm):
    """Portal sign-in: only patient accounts; staff sign in to the admin."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = _("Username")

    def clean_username(self) -> str:
        # Patient usernames are lower-case (chosen at registration); phones capitalise the first
        # letter, and "Paula.p" is Paula's account.
        return (self.cleaned_data.get("username") or "").strip().lower()

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if user.is_staff or user.is_superuser or not is_portal_login(user):
            raise self.get_invalid_login_error()


class PatientPasswordResetForm(PasswordResetForm):
    """Resets only patient accounts. A family sharing one address gets one email per account, in
    each patient's language."""

    def get_users(self, email):
        for user in super().get_users(email):
            if not user.is_staff and not user.is_superuser and is_portal_login(user):
                yield user

    def send_mail(self, subject_template_name, email_template_name, context, *args, **kwargs):
        # Each account's email in its own patient's language, whatever the page's language.
        patient = getattr(context.get("user"), "patient_record", None)
        with languages.speaking(getattr(patient, "preferred_language", None) or get_language()):
            super().send_mail(subject_template_name, email_template_name, context, *args, **kwargs)


class PatientSetPasswordForm(SetPasswordForm):
    """The new password of a reset, with the same words as registration."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = _("New password")
        self.fields["new_password2"].label = _("New password again")


#: Birth sex as the access request form offers it (the chart's codes, the patient's words).
BIRTH_SEX_CHOICES = [
    ("", pgettext_lazy("an empty choice in a list", "Choose")),
    ("F", _("Female")),
    ("M", _("Male")),
    ("U", _("Unknown")),
]


class AccessRequestForm(forms.Form):
    first_name = forms.CharField(
        label=_("First name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "given-name"})
    )
    last_name = forms.CharField(
        label=_("Last name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"})
    )
    date_of_birth = DateOfBirthField()
    email = forms.EmailField(label=_("Email"), widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    zip_code = forms.CharField(
        label=_("ZIP code"), max_length=10,
        validators=[RegexValidator(r"^\d{5}(-\d{4})?$", _("Enter a 5-digit ZIP code or ZIP+4, for example 02139 or 02139-4307."))],
        widget=forms.TextInput(attrs={"autocomplete": "postal-code", "inputmode": "numeric"}),
    )
    birth_sex = forms.ChoiceField(label=_("Sex at birth"), choices=BIRTH_SEX_CHOICES)

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])

    def clean_date_of_birth(self):
        value = self.cleaned_data["date_of_birth"]
        today = timezone.localdate()
        if value > today:
            raise forms.ValidationError(gettext("Date of birth cannot be in the future."))
        if value < today.replace(year=today.year - MAX_AGE_YEARS):
            raise forms.ValidationError(
                gettext("Date of birth is more than %(years)d years ago; check the year.") % {"years": MAX_AGE_YEARS}
            )
        return value

    def clean_first_name(self) -> str:
        return self.cleaned_data["first_name"].strip()

    def clean_last_name(self) -> str:
        return self.cleaned_data["last_name"].strip()
