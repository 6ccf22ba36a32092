"""Forms of the public pages: registration, portal login and password reset, access requests."""

import re

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm

from patients.models import ZIP_CODE_VALIDATOR, BirthSex, normalise_email, validate_date_of_birth

User = get_user_model()

DATE_INPUT_FORMATS = ["%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y"]
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
IDENTITY_MISMATCH = (
    "We could not confirm your details. Check your last name and date of birth as the practice "
    "has them, and try again."
)


class DateInput(forms.DateInput):
    input_type = "date"


class RegistrationForm(forms.Form):
    last_name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    date_of_birth = forms.DateField(
        input_formats=DATE_INPUT_FORMATS,
        widget=DateInput(format="%Y-%m-%d", attrs={"autocomplete": "bday"}),
        help_text="For example 05/17/1980.",
    )
    username = forms.CharField(
        max_length=40,
        help_text="You will sign in with this. 3 to 40 letters, digits, dots, dashes or underscores.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, invitation, **kwargs):
        self.invitation = invitation
        super().__init__(*args, **kwargs)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip().lower()
        if not USERNAME_RE.match(username):
            raise forms.ValidationError(
                "Use 3 to 40 characters: letters, digits, dots, dashes or underscores, "
                "starting with a letter or digit."
            )
        # Whether it is free is told only once the last name and date of birth matched
        # (services.attempt_registration): a link holder learns nothing about other accounts.
        return username

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords do not match.")
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


class PatientAuthenticationForm(AuthenticationForm):
    """Portal sign-in: only patient accounts; staff sign in to the admin."""

    def clean_username(self) -> str:
        # Patient usernames are lower-case (chosen at registration); phones capitalise the first
        # letter, and "Paula.p" is Paula's account.
        return (self.cleaned_data.get("username") or "").strip().lower()

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if user.is_staff or user.is_superuser or not hasattr(user, "patient_record"):
            raise self.get_invalid_login_error()


class PatientPasswordResetForm(PasswordResetForm):
    """Resets only patient accounts. A family sharing one address gets one email per account."""

    def get_users(self, email):
        for user in super().get_users(email):
            if not user.is_staff and not user.is_superuser and hasattr(user, "patient_record"):
                yield user


class AccessRequestForm(forms.Form):
    first_name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "given-name"}))
    last_name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autocomplete": "family-name"}))
    date_of_birth = forms.DateField(
        input_formats=DATE_INPUT_FORMATS,
        widget=DateInput(format="%Y-%m-%d", attrs={"autocomplete": "bday"}),
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    zip_code = forms.CharField(
        label="ZIP code", max_length=10, validators=[ZIP_CODE_VALIDATOR],
        widget=forms.TextInput(attrs={"autocomplete": "postal-code", "inputmode": "numeric"}),
    )
    birth_sex = forms.ChoiceField(choices=[("", "Choose")] + list(BirthSex.choices))

    def clean_email(self) -> str:
        return normalise_email(self.cleaned_data["email"])

    def clean_date_of_birth(self):
        value = self.cleaned_data["date_of_birth"]
        try:
            validate_date_of_birth(value)
        except forms.ValidationError as error:
            raise forms.ValidationError(error.message_dict["date_of_birth"]) from error
        return value

    def clean_first_name(self) -> str:
        return self.cleaned_data["first_name"].strip()

    def clean_last_name(self) -> str:
        return self.cleaned_data["last_name"].strip()
