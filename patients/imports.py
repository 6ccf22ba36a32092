"""Importing patients from a CSV file: validate every row first, then save only the valid ones.

Validation is the same as the admin form's (a ModelForm per row) plus set-based checks that a
form cannot do cheaply: chart numbers already used in the practice (one query per 1,000 rows)
and chart numbers repeated inside the file. Existing patients are never overwritten.

A mobile number is read in the practice's country and stored in E.164. One that cannot be read
does not cost the patient their chart: the row is imported without the number and the preview
lists it with what is wrong, so staff can fix the file and upload it again before importing
(afterwards only the chart form can add the number; imports never change existing patients).
Text consent from the file is recorded with the import's time and the importer.

Files are read the way spreadsheets save them (see `decode` and `_delimiter`), and every row
error quotes the value from the file and says what to write instead.

A row may name the patient's parent, guardian or caregiver (`GUARDIAN_COLUMNS`): they become a
`Representative` with an access to the new patient, under the practice's age bands as the patient
page grants it (a child's parent gets full access, a teenager's limited, an adult's caregiver needs
the patient's consent, a court-appointed guardian the court order). Siblings in the file naming
the same person (the same name and the same email or mobile) share one representative, and so
does a representative already on file, so a parent gets one login for the family. Nobody is
invited by the import: staff invite from the patient page, or Activate Now does.
"""

import codecs
import csv
import datetime
import io
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import Truncator

from core import languages
from core.phones import InvalidPhoneNumber, display_phone, normalise_phone

from patients import audit
from patients.audit import AuditAction
from patients.models import AgeBand, BirthSex, DateOfBirthFormField, Patient, Practice, normalise_email
from patients.models.representatives import AccessLevel, AccessStatus, Relationship, Representative, RepresentativeAccess


def _either(words: Iterable[str]) -> str:
    """'a, b or c': how the messages list the choices."""
    words = list(words)
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else "".join(words)


DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y")
DATE_FORMATS_IN_WORDS = _either(
    fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD").replace("%y", "YY") for fmt in DATE_FORMATS
)
DATE_EXAMPLE = datetime.date(1980, 5, 17).strftime(DATE_FORMATS[0])
TRUE_WORDS = ("yes", "y", "true", "t", "1", "x")
FALSE_WORDS = ("no", "n", "false", "f", "0", "")
YES_NO_IN_WORDS = f"{_either(TRUE_WORDS)} for yes; {', '.join(w for w in FALSE_WORDS if w)} or blank for no"
SEX_WORDS = {
    **{value.lower(): value for value in BirthSex.values},
    **{label.lower(): value for value, label in BirthSex.choices},
    "": "",
}
SEX_IN_WORDS = f"{_either(BirthSex.values)} ({_either(BirthSex.labels)}), or blank"
MAX_ROWS = 50_000
#: The preview lists this many of the rows that will be imported, then "and N more".
PREVIEW_VALID_ROWS = 200
#: Values quoted back in error messages are cut to this many characters.
SHOWN_VALUE_LENGTH = 40


def _header_key(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


class Column(str):
    """A column's canonical name, carrying what the import form tells staff about it.

    A str so it works wherever a field name does (form fields, row values). The admin view
    hands the form template `list(COLUMNS)`, so the template reads the headers, hints and
    requirements from here instead of repeating them.
    """

    label: str
    headers: tuple[str, ...]
    header_keys: frozenset[str]
    hint: str
    required: bool
    for_invitation: bool
    for_text: bool

    def __new__(
        cls, name: str, *headers: str, hint: str = "", required: bool = False, for_invitation: bool = False,
        for_text: bool = False,
    ) -> "Column":
        column = super().__new__(cls, name)
        column.label = name.replace("_", " ")
        column.headers = headers
        # Headers are compared lower-case with spaces, dashes and other punctuation ignored.
        column.header_keys = frozenset(_header_key(header) for header in (name, *headers))
        column.hint = hint
        column.required = required
        column.for_invitation = for_invitation
        column.for_text = for_text
        return column


# for_invitation mirrors the missing-field and consent rules of invitations.eligibility for email,
# for_text its text rules (patients cannot import from invitations); tests/patients/
# test_csv_import.py and test_csv_import_texts.py check that they agree.
COLUMNS: tuple[Column, ...] = (
    Column("chart_number", "Chart", "Chart No", "MRN", required=True,
           hint="Required; must not already belong to a patient of the practice."),
    Column("first_name", "First", "Given Name", for_invitation=True),
    Column("last_name", "Last", "Surname", "Family Name", for_invitation=True),
    Column("date_of_birth", "DOB", "Birth Date", for_invitation=True, hint=f"{DATE_FORMATS_IN_WORDS}."),
    Column("zip_code", "ZIP", "Postal Code", for_invitation=True, hint="5 digits or ZIP+4, e.g. 02139 or 02139-4307."),
    Column("email", "Email Address", for_invitation=True),
    Column("phone", "Phone Number", "Home Phone", hint="Any format; kept as written. Texts go to mobile_phone."),
    Column("mobile_phone", "Mobile", "Mobile Number", "Cell", "Cell Phone", "Cell Number", for_text=True,
           hint="For invitations by text. A number without + is read as the practice's country's, e.g. "
                "(617) 555-0123 or 617.555.0123 in the US; write others with + and the country code, e.g. "
                "+44 7400 123456. A number that cannot be read is left out and the rest of the row is "
                "imported; the preview lists each one."),
    Column("birth_sex", "Sex", for_invitation=True, hint=f"{SEX_IN_WORDS}."),
    Column("email_consent", "Consent", "Consents to Email", for_invitation=True,
           hint=f"Must be yes to invite. {YES_NO_IN_WORDS}."),
    Column("sms_consent", "Text Consent", "Consents to Texts", "Texts OK", for_text=True,
           hint=f"Must be yes to invite by text; recorded as given at the import, by you. {YES_NO_IN_WORDS}."),
    Column("deceased", hint=f"{YES_NO_IN_WORDS}."),
    Column("preferred_language", "Language", "Preferred Language", "Patient Language", "Lang",
           hint="The language of the patient's invitations and portal: a code or a name, e.g. en, es, spa, "
                "English, Spanish, Español. Blank: the practice's language."),
)
REQUIRED_COLUMNS = tuple(column for column in COLUMNS if column.required)

#: How the file may name the relationship (compared like headers: case, spaces and punctuation ignored).
RELATIONSHIP_WORDS = {
    **{word: Relationship.PARENT for word in (
        "parent", "mother", "father", "mom", "mum", "dad", "stepmother", "stepfather", "stepparent", "step parent",
        "foster parent", "guardian", "legal guardian", "parent or guardian", "parent/guardian",
    )},
    **{word: Relationship.COURT_GUARDIAN for word in (
        "court guardian", "court-appointed guardian", "court appointed guardian", "court_guardian", "conservator",
    )},
    **{word: Relationship.CAREGIVER for word in ("caregiver", "care giver", "carer", "adult caregiver", "caretaker")},
}
RELATIONSHIP_KEYS = {_header_key(word): relationship for word, relationship in RELATIONSHIP_WORDS.items()}
RELATIONSHIP_IN_WORDS = "parent (or mother, father, guardian), court guardian or caregiver"

#: The patient's parent, guardian or caregiver (module docstring).
GUARDIAN_COLUMNS: tuple[Column, ...] = (
    Column("guardian_name", "Guardian", "Guardian Name", "Parent", "Parent Name", "Parent/Guardian",
           "Parent or Guardian", "Parent Guardian Name", "Caregiver Name",
           hint="The whole name, e.g. Maria Garcia or Garcia, Maria; or use the two columns below."),
    Column("guardian_first_name", "Guardian First Name", "Parent First Name", "Guardian Given Name"),
    Column("guardian_last_name", "Guardian Last Name", "Parent Last Name", "Guardian Surname", "Guardian Family Name"),
    Column("guardian_email", "Guardian Email Address", "Parent Email", "Parent Email Address", "Caregiver Email",
           hint="Their own address, for their invitation. A guardian needs an email or a mobile number."),
    Column("guardian_mobile", "Guardian Mobile Phone", "Guardian Cell", "Guardian Cell Phone", "Parent Mobile",
           "Parent Cell", "Parent Mobile Phone", "Caregiver Mobile",
           hint="Read like mobile_phone; a number that cannot be read is an error on the row."),
    Column("guardian_sms_consent", "Guardian Texts OK", "Guardian Text Consent", "Parent Texts OK", "Parent Text Consent",
           hint=f"The guardian agreed to invitation texts. {YES_NO_IN_WORDS}."),
    Column("guardian_relationship", "Relationship", "Guardian Relationship", "Relationship to Patient", "Parent Relationship",
           hint=f"{RELATIONSHIP_IN_WORDS[0].upper()}{RELATIONSHIP_IN_WORDS[1:]}. Blank: parent or guardian of a patient under "
                "the practice's age of majority."),
    Column("guardian_consent", "Patient Consent to Guardian", "Consent to Guardian", "Guardian Consent", "Caregiver Consent",
           hint="For an adult patient: how they consented to the caregiver (e.g. signed form 3/2/2026). Required for an "
                "adult, except for a court guardian."),
    Column("guardian_court_order", "Court Order", "Guardian Court Order", "Court Document",
           hint="For a court guardian: the order on file (court, number, date). Required for them."),
)
ALL_COLUMNS = COLUMNS + GUARDIAN_COLUMNS

#: Separators a spreadsheet may save with: Excel uses semicolons where the decimal mark is a comma,
#: and tabs for "Unicode Text". The header row shows which one a file uses.
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
ENCODINGS_TRIED = "UTF-8, UTF-16 and Windows-1252"
SAVE_AS_CSV = "In the spreadsheet use File › Save As, choose “CSV UTF-8 (Comma delimited)”, and upload that file."
#: Spreadsheet workbooks (.xlsx is a zip archive, .xls an OLE2 file) renamed or mistaken for CSV.
WORKBOOK_SIGNATURES = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")


class PatientRowForm(forms.ModelForm):
    date_of_birth = DateOfBirthFormField(required=False, input_formats=DATE_FORMATS)

    class Meta:
        model = Patient
        # The mobile number is read by `_mobile_phone` (its problems are warnings, not errors)
        # and set on the patient after the form, which need not read it a second time.
        fields = [str(name) for name in COLUMNS if name != "mobile_phone"]

    def validate_unique(self) -> None:
        # Chart numbers are checked for the whole file at once (see validate_rows).
        pass


@dataclass
class RowResult:
    line: int
    values: dict[str, str]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (column, message)
    # What is imported differently from the file, e.g. a mobile number that could not be read.
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (column, message)
    patient: Optional[Patient] = None
    #: The parent, guardian or caregiver the row names, if any.
    guardian: Optional["GuardianAccess"] = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.values.get("first_name"), self.values.get("last_name")) if part)

    @property
    def problems(self) -> list[tuple[str, str]]:
        """The errors, then the warnings (so a skipped row is fixed in one go), as the preview
        shows them: (column in words, message)."""
        return [(column.replace("_", " "), message) for column, message in self.errors + self.warnings]

    @property
    def language(self) -> str:
        """The patient's language as read, in words ("Spanish")."""
        return languages.english_name(self.patient.preferred_language) if self.patient is not None else ""

    @property
    def shown_mobile(self) -> str:
        """The mobile number as read, the way the practice's staff write it ("(617) 555-0123")."""
        if self.patient is None or not self.patient.mobile_phone:
            return ""
        return display_phone(self.patient.mobile_phone, self.patient.practice.country)

    @property
    def notes(self) -> list[tuple[str, str]]:
        """The warnings as the preview shows them: (column in words, message)."""
        return [(column.replace("_", " "), message) for column, message in self.warnings]


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str = ""  # as people know it ("UTF-16"); empty when the caller passed text
    delimiter: str = ","

    @property
    def valid_rows(self) -> list[RowResult]:
        return [row for row in self.rows if row.ok]

    @property
    def invalid_rows(self) -> list[RowResult]:
        return [row for row in self.rows if not row.ok]

    @property
    def rows_without_mobile(self) -> list[RowResult]:
        """Rows that will be imported without the mobile number the file has (it could not be read)."""
        return [row for row in self.rows if row.ok and any(column == "mobile_phone" for column, _ in row.warnings)]

    @property
    def guardians(self) -> list["Guardian"]:
        """The people the rows to import name as parent, guardian or caregiver, each once."""
        seen: dict[int, Guardian] = {}
        for row in self.valid_rows:
            if row.guardian is not None:
                seen.setdefault(id(row.guardian.person), row.guardian.person)
        return list(seen.values())

    @property
    def rows_with_guardian(self) -> list[RowResult]:
        return [row for row in self.valid_rows if row.guardian is not None]

    @property
    def shown_valid_rows(self) -> list[RowResult]:
        return self.valid_rows[:PREVIEW_VALID_ROWS]

    @property
    def more_valid_rows(self) -> int:
        return max(0, len(self.valid_rows) - PREVIEW_VALID_ROWS)

    @property
    def separated_by(self) -> str:
        return DELIMITERS[self.delimiter]


class DecodedText(str):
    """An uploaded file's text, with the encoding it was read in, or why it could not be read.

    A str because the admin view passes `decode`'s result straight to `validate_rows`, which
    also takes plain text (tests, the shell); validate_rows turns `problem` into a file error.
    """

    encoding: str
    problem: str

    def __new__(cls, text: str, *, encoding: str = "", problem: str = "") -> "DecodedText":
        decoded = super().__new__(cls, text)
        decoded.encoding = encoding
        decoded.problem = problem
        return decoded


def _utf16_without_bom(raw: bytes) -> Optional[str]:
    """UTF-16 of mostly Latin text has a NUL in every other byte: after each character's low
    byte in little-endian, before it in big-endian. Such a file saved without a BOM is still read."""
    sample = raw[:4096]
    pairs = len(sample) // 2
    nul_first, nul_second = sample[0::2].count(0), sample[1::2].count(0)
    if pairs and nul_second > pairs / 2 and nul_first < pairs / 10:
        return "utf-16-le"
    if pairs and nul_first > pairs / 2 and nul_second < pairs / 10:
        return "utf-16-be"
    return None


def decode(raw: bytes) -> DecodedText:
    """Read the encodings spreadsheets save CSV in: UTF-8 (with or without BOM), UTF-16 and Windows-1252."""
    if raw.startswith(WORKBOOK_SIGNATURES):
        return DecodedText("", problem=f"This is a spreadsheet workbook, not a CSV file. {SAVE_AS_CSV}")
    if raw.startswith(codecs.BOM_UTF8):
        candidates = [("utf-8-sig", "UTF-8")]
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = [("utf-16", "UTF-16")]  # the codec reads the BOM for the byte order and drops it
    elif utf16 := _utf16_without_bom(raw):
        candidates = [(utf16, "UTF-16")]
    else:
        candidates = [("utf-8", "UTF-8"), ("cp1252", "Windows-1252")]
    for codec, encoding in candidates:
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:  # NULs in decoded text mean binary data, not a spreadsheet's text
            return DecodedText(text, encoding=encoding)
    return DecodedText(
        "", problem=f"The file could not be read as text (tried {ENCODINGS_TRIED}). {SAVE_AS_CSV}"
    )


def _delimiter(text: str) -> str:
    header_line = re.match(r"[^\r\n]*", text).group()
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    # The most frequent separator wins; ties and a one-column header go to the comma (listed first).
    best = max(DELIMITERS, key=unquoted.count)
    return best if unquoted.count(best) else ","


def _map_headers(headers: Iterable[str]) -> tuple[dict[int, Column], list[str]]:
    mapping: dict[int, Column] = {}
    ignored: list[str] = []
    for index, header in enumerate(headers):
        key = _header_key(header)
        column = next((column for column in ALL_COLUMNS if key in column.header_keys), None)
        if column is None:
            if header.strip():
                ignored.append(header.strip())
        elif column not in mapping.values():
            mapping[index] = column
    return mapping, ignored


def _boolean(value: str) -> Optional[bool]:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _quoted(value: str) -> str:
    return f"“{Truncator(value).chars(SHOWN_VALUE_LENGTH)}”"


def validate_rows(*, practice: Practice, text: str, now: Optional[datetime.datetime] = None) -> ImportReport:
    report = ImportReport()
    today = practice.today(now or timezone.now())
    if isinstance(text, DecodedText):
        report.encoding = text.encoding
        if text.problem:
            report.file_errors.append(text.problem)
            return report
    report.delimiter = _delimiter(text)
    # newline="": the csv module handles line endings itself (\r\n, \n and old Mac \r).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=report.delimiter)
    try:
        headers = next(reader)
    except StopIteration:
        report.file_errors.append("The file is empty.")
        return report
    except csv.Error as exc:
        report.file_errors.append(f"The file is not a readable CSV file ({exc}).")
        return report

    mapping, report.ignored_columns = _map_headers(headers)
    missing = [column for column in REQUIRED_COLUMNS if column not in mapping.values()]
    if missing:
        found = ", ".join(_quoted(header.strip()) for header in headers if header.strip()) or "nothing"
        report.file_errors.append(
            f"The header row (the first line) has no column for: {', '.join(c.label for c in missing)}. "
            f"It has {found}. Accepted columns: {', '.join(ALL_COLUMNS)}."
        )
        return report

    try:
        for line, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(report.rows) >= MAX_ROWS:
                report.file_errors.append(
                    f"The file has more than {MAX_ROWS:,} patients; split it into smaller files."
                )
                return report
            values = {name: (cells[index].strip() if index < len(cells) else "") for index, name in mapping.items()}
            row = _validate_row(practice, line, values)
            _validate_guardian(practice, row, today=today)
            report.rows.append(row)
    except csv.Error as exc:
        report.file_errors.append(f"The file could not be read past line {reader.line_num}: {exc}.")
        return report

    _check_chart_numbers(practice, report.rows)
    _share_guardians(practice, report.rows)
    return report


def _validate_row(practice: Practice, line: int, values: dict[str, str]) -> RowResult:
    row = RowResult(line=line, values=values)
    data = dict(values)
    mobile = _mobile_phone(row, data["mobile_phone"], practice.country) if data.get("mobile_phone") else ""
    for name in ("email_consent", "sms_consent", "deceased"):
        if name in data:
            parsed = _boolean(data[name])
            if parsed is None:
                row.errors.append((name, f"{_quoted(data[name])} is not yes or no; use {YES_NO_IN_WORDS}."))
            data[name] = "on" if parsed else ""
    if "birth_sex" in data:
        sex = SEX_WORDS.get(data["birth_sex"].lower())
        if sex is None:
            row.errors.append(("birth_sex", f"{_quoted(data['birth_sex'])} is not a birth sex; use {SEX_IN_WORDS}."))
        data["birth_sex"] = sex or ""
    written_language = data.get("preferred_language", "")
    language = languages.read(written_language) if written_language else practice.default_language
    if language is None:
        row.errors.append((
            "preferred_language",
            f"{_quoted(written_language)} is not a language the portal speaks; use {_languages_in_words()}, or leave it blank "
            "for the practice's language.",
        ))
    data["preferred_language"] = language or practice.default_language
    form = PatientRowForm(data=data, instance=Patient(practice=practice))
    if not form.is_valid():
        for name, errors in form.errors.as_data().items():
            for error in errors:
                column = name if name != "__all__" else "row"
                row.errors.append((column, _explain(column, error, values.get(name, ""))))
    else:
        row.patient = form.instance
        row.patient.mobile_phone = mobile
    if not values.get("chart_number"):
        row.errors = [e for e in row.errors if e[0] != "chart_number"]
        row.errors.append(("chart_number", "A chart number is required."))
    return row


def _languages_in_words() -> str:
    return _either(f"{code} ({languages.english_name(code)})" for code in languages.codes())


def _mobile_phone(row: RowResult, value: str, region: str) -> str:
    """The number in E.164, or "" with a warning saying what is wrong: the patient is imported
    without it (module docstring)."""
    try:
        return normalise_phone(value, region)
    except InvalidPhoneNumber as exc:
        message = str(exc)
        # The messages quote the number, except when it is too long to quote whole.
        row.warnings.append(("mobile_phone", message if message.startswith("“") else f"{_quoted(value)}: {message}"))
        return ""


def _explain(column: str, error: ValidationError, value: str) -> str:
    """The form's message, with the value from the file and, where the form is vague, the fix."""
    if error.code == "invalid" and column == "date_of_birth":
        return f"{_quoted(value)} is not a date; use {DATE_FORMATS_IN_WORDS} (e.g. {DATE_EXAMPLE})."
    if error.code == "invalid" and column == "email":
        return f"{_quoted(value)} is not an email address; check it for typos."
    message = " ".join(error.messages)
    return f"{_quoted(value)}: {message}" if value else message


def _check_chart_numbers(practice: Practice, rows: list[RowResult]) -> None:
    first_seen: dict[str, int] = {}
    for row in rows:
        number = row.values.get("chart_number", "")
        if not number:
            continue
        if number in first_seen:
            row.errors.append(
                ("chart_number", f"Chart number {_quoted(number)} is repeated (first on line {first_seen[number]}).")
            )
        else:
            first_seen[number] = row.line
    numbers = list(first_seen)
    taken: set[str] = set()
    for start in range(0, len(numbers), 1000):
        taken.update(
            Patient.objects.filter(practice=practice, chart_number__in=numbers[start : start + 1000])
            .values_list("chart_number", flat=True)
        )
    for row in rows:
        number = row.values.get("chart_number", "")
        if number in taken:
            row.errors.append(
                (
                    "chart_number",
                    f"Chart number {_quoted(number)} already belongs to a patient of this practice; it was not changed.",
                )
            )

# -- parents, guardians and caregivers --------------------------------------------------------------


@dataclass(eq=False)
class Guardian:
    """A parent, guardian or caregiver named in the file: one per person, however many of their
    children's rows name them (`_share_guardians`)."""

    first_name: str
    last_name: str
    email: str
    mobile_phone: str
    sms_consent: bool
    #: The first line naming them.
    line: int
    #: A representative of the practice already on file who is this person (set by `_share_guardians`).
    existing: Optional[Representative] = None
    #: Lines after the first naming them (siblings).
    also_on: list[int] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def name_key(self) -> str:
        return _header_key(self.full_name)


@dataclass(eq=False)
class GuardianAccess:
    """The access one row gives its guardian to its patient (as `invitations.representatives.grant`
    would under the practice's age bands)."""

    person: Guardian
    relationship: str
    level: str
    patient_consent: str = ""
    court_document: str = ""
    ends_at_majority: bool = False

    @property
    def label(self) -> str:
        return Relationship(self.relationship).label.lower()


def _guardian_name(values: dict[str, str]) -> tuple[str, str]:
    """(first, last) from the two name columns, else from the whole name ("Maria Garcia",
    "Garcia, Maria", "Ana de la Cruz": the first word is the first name)."""
    first, last = values.get("guardian_first_name", ""), values.get("guardian_last_name", "")
    if first or last:
        return first, last
    whole = " ".join(values.get("guardian_name", "").split())
    if "," in whole:
        last, _, first = (part.strip() for part in whole.partition(","))
        return first, last
    first, _, last = whole.partition(" ")
    return first, last


def _validate_guardian(practice: Practice, row: RowResult, *, today: datetime.date) -> None:
    """The row's guardian columns: who they are, how to reach them, and whether the practice's age
    bands allow them this patient. Every problem is an error on the row (nothing is half imported)."""
    values = row.values
    if not any(values.get(column) for column in GUARDIAN_COLUMNS):
        return
    errors: list[tuple[str, str]] = []
    first, last = _guardian_name(values)
    name_column = "guardian_name" if values.get("guardian_name") and not (
        values.get("guardian_first_name") or values.get("guardian_last_name")) else "guardian_first_name"
    if not first or not last:
        errors.append((name_column, "The guardian needs a first and a last name (e.g. Maria Garcia, or the guardian "
                                    "first name and guardian last name columns)."))
    elif len(first) > 100 or len(last) > 100:
        errors.append((name_column, f"{_quoted(first + ' ' + last)} is too long: 100 characters at most for each of "
                                    "the first and last names."))
    email = normalise_email(values.get("guardian_email", ""))
    if email:
        try:
            validate_email(email)
        except ValidationError:
            errors.append(("guardian_email", f"{_quoted(values['guardian_email'])} is not an email address; check it for typos."))
            email = ""
    mobile = ""
    if values.get("guardian_mobile"):
        try:
            mobile = normalise_phone(values["guardian_mobile"], practice.country)
        except InvalidPhoneNumber as exc:
            message = str(exc)
            errors.append(("guardian_mobile", message if message.startswith("“") else f"{_quoted(values['guardian_mobile'])}: {message}"))
    if not values.get("guardian_email") and not values.get("guardian_mobile"):
        errors.append(("guardian_email", "The guardian needs an email address or a mobile number, to be invited."))
    texts_ok = _boolean(values.get("guardian_sms_consent", ""))
    if texts_ok is None:
        errors.append(("guardian_sms_consent", f"{_quoted(values['guardian_sms_consent'])} is not yes or no; use {YES_NO_IN_WORDS}."))
    written = values.get("guardian_relationship", "")
    relationship = RELATIONSHIP_KEYS.get(_header_key(written)) if written else None
    if written and relationship is None:
        errors.append(("guardian_relationship", f"{_quoted(written)} is not a relationship the portal knows; use {RELATIONSHIP_IN_WORDS}."))

    level, ends_at_majority = AccessLevel.FULL, False
    consent = values.get("guardian_consent", "")
    consent = "" if _boolean(consent) is False else consent
    court_order = values.get("guardian_court_order", "")
    if not practice.family_access_enabled:
        errors.append(("guardian_name", "Family and caregiver access is turned off for this practice (practice settings): "
                                        "leave the guardian columns empty, or turn it on and upload the file again."))
    elif row.patient is not None:  # else the patient's own errors are listed; the bands wait for a valid date of birth
        band = practice.age_band(row.patient.date_of_birth, today)
        if not band:
            errors.append(("date_of_birth", "A guardian needs the patient's date of birth: it decides who may act for them."))
        elif relationship is None and not written:
            if band == AgeBand.ADULT:
                errors.append(("guardian_relationship", f"The patient is an adult: write the relationship ({RELATIONSHIP_IN_WORDS})."))
            relationship = Relationship.PARENT
        if band == AgeBand.TEEN:
            level = AccessLevel.LIMITED  # a teenager's representatives see the limited set (the patient page records why full)
        if band in (AgeBand.CHILD, AgeBand.TEEN):
            ends_at_majority = relationship != Relationship.COURT_GUARDIAN
        if band == AgeBand.ADULT and relationship not in (None, Relationship.COURT_GUARDIAN) and not consent:
            errors.append(("guardian_consent", "The patient is an adult: a caregiver needs the patient's consent. Write how "
                                               "they consented in the guardian consent column (e.g. signed form 3/2/2026), "
                                               "or make them a court guardian with the court order."))
    if relationship == Relationship.COURT_GUARDIAN and not court_order:
        errors.append(("guardian_court_order", "A court guardian needs the court order (court, number, date) in the court order column."))
    row.errors += errors
    if errors or relationship is None:
        return
    if _boolean(consent):
        consent = f"Recorded as yes in the CSV import of {today.isoformat()}"
    person = Guardian(
        first_name=first, last_name=last, email=email, mobile_phone=mobile, sms_consent=bool(texts_ok and mobile), line=row.line,
    )
    row.guardian = GuardianAccess(
        person=person, relationship=relationship, level=level, patient_consent=consent[:300],
        court_document=court_order[:300], ends_at_majority=ends_at_majority,
    )


def _share_guardians(practice: Practice, rows: list[RowResult]) -> None:
    """One person per guardian: rows naming the same name with the same email or mobile share the
    first row's `Guardian` (a later row may add the contact the first left blank, never change one:
    a different value is an error on that row), and a representative of the practice already on
    file with that name and email or mobile is reused (one query per 1,000 guardians)."""
    by_contact: dict[tuple[str, str, str], Guardian] = {}
    people: list[Guardian] = []
    for row in rows:
        if not row.ok or row.guardian is None:
            continue
        mine = row.guardian.person
        keys = [(mine.name_key, kind, value) for kind, value in (("email", mine.email), ("mobile", mine.mobile_phone)) if value]
        found = {id(by_contact[key]): by_contact[key] for key in keys if key in by_contact}
        if not found:
            people.append(mine)
            for key in keys:
                by_contact[key] = mine
            continue
        if len(found) > 1:
            lines = " and ".join(str(person.line) for person in found.values())
            row.errors.append(("guardian_name", f"The guardian matches two different people on lines {lines} (the same name, "
                                                "one by email, one by mobile); write the same email and mobile on all their lines."))
            continue
        person = next(iter(found.values()))
        clash = next(
            (column for column, theirs, ours in (("guardian_email", person.email, mine.email), ("guardian_mobile", person.mobile_phone, mine.mobile_phone))
             if theirs and ours and theirs != ours),
            None,
        )
        if clash:
            row.errors.append((clash, f"The guardian on line {person.line} has the same name but another "
                                      f"{'email address' if clash == 'guardian_email' else 'mobile number'}; write the same one "
                                      "on both lines if they are one person."))
            continue
        person.email, person.mobile_phone = person.email or mine.email, person.mobile_phone or mine.mobile_phone
        person.sms_consent = bool(person.mobile_phone) and (person.sms_consent or mine.sms_consent)
        person.also_on.append(row.line)
        row.guardian.person = person
        for key in keys:
            by_contact.setdefault(key, person)
    for start in range(0, len(people), 1000):
        batch = people[start:start + 1000]
        emails = [person.email for person in batch if person.email]
        mobiles = [person.mobile_phone for person in batch if person.mobile_phone]
        on_file = Representative.objects.filter(practice=practice).filter(Q(email__in=emails) | Q(mobile_phone__in=mobiles))
        known: dict[tuple[str, str, str], Representative] = {}
        for representative in sorted(on_file, key=lambda r: (r.portal_user_id is None, r.pk)):  # one with a login first
            name_key = _header_key(f"{representative.first_name} {representative.last_name}")
            for kind, value in (("email", normalise_email(representative.email)), ("mobile", representative.mobile_phone)):
                if value:
                    known.setdefault((name_key, kind, value), representative)
        for person in batch:
            person.existing = next(
                (known[key] for key in ((person.name_key, "email", person.email), (person.name_key, "mobile", person.mobile_phone)) if key in known),
                None,
            )


def _save_guardians(rows: list[RowResult], *, practice: Practice, actor, now: datetime.datetime, batch_size: int) -> tuple[int, int]:
    """Create the new representatives and every row's access (the patients are saved: they have
    their ids), each grant in the audit trail. Returns (new representatives, accesses)."""
    rows = [row for row in rows if row.guardian is not None]
    if not rows:
        return 0, 0
    staff = actor if getattr(actor, "pk", None) else None
    people = {id(row.guardian.person): row.guardian.person for row in rows}
    new = [person for person in people.values() if person.existing is None]
    created = Representative.objects.bulk_create(
        [
            Representative(
                practice=practice, first_name=person.first_name, last_name=person.last_name, email=person.email,
                mobile_phone=person.mobile_phone, sms_consent=person.sms_consent, created_at=now, created_by=staff,
            )
            for person in new
        ],
        batch_size=batch_size,
    )
    for person, representative in zip(new, created):
        person.existing = representative
    accesses = RepresentativeAccess.objects.bulk_create(
        [
            RepresentativeAccess(
                practice=practice, patient=row.patient, representative=row.guardian.person.existing,
                relationship=row.guardian.relationship, level=row.guardian.level, patient_consent=row.guardian.patient_consent,
                court_document=row.guardian.court_document, status=AccessStatus.INVITED, granted_at=now, granted_by=staff,
                ends_at_majority=row.guardian.ends_at_majority,
            )
            for row in rows
        ],
        batch_size=batch_size,
    )
    audit.record_many(
        actor=actor, action=AuditAction.REPRESENTATIVE_GRANTED, details={"csv_import": True},
        rows=[
            (practice.pk, access.patient_id,
             f"Gave {access.representative} {access.get_level_display().lower()} as {access.get_relationship_display().lower()} (CSV import)")
            for access in accesses
        ],
    )
    return len(new), len(accesses)


class ImportConflict(Exception):
    """Chart numbers were taken by someone else between the preview and the import."""


def import_valid_rows(
    report: ImportReport, *, practice: Practice, actor=None, batch_size: int = 1000,
    now: Optional[datetime.datetime] = None,
) -> int:
    """Create the report's valid rows as the practice's patients, all or none, and record the
    import in the practice's audit trail (counts only). Text consent given in the file is
    recorded as given at `now` (the import's time) by `actor`. Returns how many were created."""
    now = now or timezone.now()
    patients = [row.patient for row in report.valid_rows]
    for patient in patients:
        if patient.sms_consent:
            patient.note_sms_consent_change(by=actor, now=now)
    skipped = len(report.invalid_rows)
    without_mobile = len(report.rows_without_mobile)
    summary = f"Imported {len(patients):,} patients ({skipped:,} rows skipped"
    summary += f", {without_mobile:,} without their unreadable mobile number)" if without_mobile else ")"
    try:
        with transaction.atomic():
            Patient.objects.bulk_create(patients, batch_size=batch_size)
            new_guardians, accesses = _save_guardians(report.valid_rows, practice=practice, actor=actor, now=now, batch_size=batch_size)
            # The consents the file gave are consent changes too: how many, in the import's entry.
            details = {
                "imported": len(patients), "skipped": skipped, "without_mobile": without_mobile,
                "email_consent": sum(1 for p in patients if p.email_consent),
                "text_consent": sum(1 for p in patients if p.sms_consent),
            }
            summary += f"; consent to email {details['email_consent']:,}, to texts {details['text_consent']:,}"
            if accesses:
                summary += f"; {accesses:,} given access to a parent, guardian or caregiver ({new_guardians:,} new)"
                details.update(representatives_new=new_guardians, representative_accesses=accesses)
            audit.record(
                practice_id=practice.pk, actor=actor, action=AuditAction.CSV_IMPORT, summary=summary[:300], details=details,
            )
    except IntegrityError as exc:
        raise ImportConflict(
            "Some chart numbers were added by someone else since the preview. Nothing was imported; "
            "upload the file again to see a fresh preview."
        ) from exc
    return len(patients)

