"""Importing patients from a CSV file: validate every row first, then save only the valid ones.

Validation is the same as the admin form's (a ModelForm per row) plus set-based checks that a
form cannot do cheaply: chart numbers already used in the practice (one query per 1,000 rows)
and chart numbers repeated inside the file. Existing patients are never overwritten.
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
from django.db import IntegrityError, transaction
from django.utils.text import Truncator

from .models import BirthSex, Patient, Practice


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

    def __new__(
        cls, name: str, *headers: str, hint: str = "", required: bool = False, for_invitation: bool = False
    ) -> "Column":
        column = super().__new__(cls, name)
        column.label = name.replace("_", " ")
        column.headers = headers
        # Headers are compared lower-case with spaces, dashes and other punctuation ignored.
        column.header_keys = frozenset(_header_key(header) for header in (name, *headers))
        column.hint = hint
        column.required = required
        column.for_invitation = for_invitation
        return column


# for_invitation mirrors the missing-field and consent rules of invitations.eligibility (patients
# cannot import from invitations); tests/patients/test_csv_import.py checks the two agree.
COLUMNS: tuple[Column, ...] = (
    Column("chart_number", "Chart", "Chart No", "MRN", required=True,
           hint="Required; must not already belong to a patient of the practice."),
    Column("first_name", "First", "Given Name", for_invitation=True),
    Column("last_name", "Last", "Surname", "Family Name", for_invitation=True),
    Column("date_of_birth", "DOB", "Birth Date", for_invitation=True, hint=f"{DATE_FORMATS_IN_WORDS}."),
    Column("zip_code", "ZIP", "Postal Code", for_invitation=True, hint="5 digits or ZIP+4, e.g. 02139 or 02139-4307."),
    Column("email", "Email Address", for_invitation=True),
    Column("phone", "Phone Number", "Mobile"),
    Column("birth_sex", "Sex", for_invitation=True, hint=f"{SEX_IN_WORDS}."),
    Column("email_consent", "Consent", "Consents to Email", for_invitation=True,
           hint=f"Must be yes to invite. {YES_NO_IN_WORDS}."),
    Column("deceased", hint=f"{YES_NO_IN_WORDS}."),
)
REQUIRED_COLUMNS = tuple(column for column in COLUMNS if column.required)

#: Separators a spreadsheet may save with: Excel uses semicolons where the decimal mark is a comma,
#: and tabs for "Unicode Text". The header row shows which one a file uses.
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs"}
ENCODINGS_TRIED = "UTF-8, UTF-16 and Windows-1252"
SAVE_AS_CSV = "In the spreadsheet use File › Save As, choose “CSV UTF-8 (Comma delimited)”, and upload that file."
#: Spreadsheet workbooks (.xlsx is a zip archive, .xls an OLE2 file) renamed or mistaken for CSV.
WORKBOOK_SIGNATURES = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")


class PatientRowForm(forms.ModelForm):
    date_of_birth = forms.DateField(required=False, input_formats=DATE_FORMATS)

    class Meta:
        model = Patient
        fields = [name for name in COLUMNS]

    def validate_unique(self) -> None:
        # Chart numbers are checked for the whole file at once (see validate_rows).
        pass


@dataclass
class RowResult:
    line: int
    values: dict[str, str]
    errors: list[tuple[str, str]] = field(default_factory=list)  # (column, message)
    patient: Optional[Patient] = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class ImportReport:
    rows: list[RowResult] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def valid_rows(self) -> list[RowResult]:
        return [row for row in self.rows if row.ok]

    @property
    def invalid_rows(self) -> list[RowResult]:
        return [row for row in self.rows if not row.ok]


def _header_key(header: str) -> str:
    return "".join(ch for ch in header.lower() if ch.isalnum())


def _map_headers(headers: Iterable[str]) -> tuple[dict[int, str], list[str]]:
    mapping: dict[int, str] = {}
    ignored: list[str] = []
    for index, header in enumerate(headers):
        key = _header_key(header)
        for name, spellings in COLUMNS.items():
            if key == _header_key(name) or key in spellings:
                if name not in mapping.values():
                    mapping[index] = name
                break
        else:
            if header.strip():
                ignored.append(header.strip())
    return mapping, ignored


def _boolean(value: str) -> Optional[bool]:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def validate_rows(*, practice: Practice, text: str) -> ImportReport:
    report = ImportReport()
    reader = csv.reader(io.StringIO(text))
    try:
        headers = next(reader)
    except StopIteration:
        report.file_errors.append("The file is empty.")
        return report
    except csv.Error as exc:
        report.file_errors.append(f"The file is not a readable CSV file ({exc}).")
        return report

    mapping, report.ignored_columns = _map_headers(headers)
    missing = [name for name in REQUIRED_COLUMNS if name not in mapping.values()]
    if missing:
        report.file_errors.append(
            "The header row has no column for: "
            + ", ".join(name.replace("_", " ") for name in missing)
            + ". Expected columns: "
            + ", ".join(COLUMNS)
            + "."
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
            report.rows.append(_validate_row(practice, line, values))
    except csv.Error as exc:
        report.file_errors.append(f"The file could not be read past line {reader.line_num}: {exc}.")
        return report

    _check_chart_numbers(practice, report.rows)
    return report


def _validate_row(practice: Practice, line: int, values: dict[str, str]) -> RowResult:
    row = RowResult(line=line, values=values)
    data = dict(values)
    for name in ("email_consent", "deceased"):
        if name in data:
            parsed = _boolean(data[name])
            if parsed is None:
                row.errors.append((name, f"'{data[name]}' is not yes or no."))
            data[name] = "on" if parsed else ""
    if "birth_sex" in data:
        sex = SEX_WORDS.get(data["birth_sex"].lower())
        if sex is None:
            row.errors.append(("birth_sex", f"'{data['birth_sex']}' is not F, M or U."))
        data["birth_sex"] = sex or ""
    form = PatientRowForm(data=data, instance=Patient(practice=practice))
    if not form.is_valid():
        for name, messages in form.errors.items():
            for message in messages:
                row.errors.append((name if name != "__all__" else "row", message))
    else:
        row.patient = form.instance
    if not values.get("chart_number"):
        row.errors = [e for e in row.errors if e[0] != "chart_number"]
        row.errors.append(("chart_number", "A chart number is required."))
    return row


def _check_chart_numbers(practice: Practice, rows: list[RowResult]) -> None:
    first_seen: dict[str, int] = {}
    for row in rows:
        number = row.values.get("chart_number", "")
        if not number:
            continue
        if number in first_seen:
            row.errors.append(("chart_number", f"Chart number {number} is repeated (first on line {first_seen[number]})."))
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
                ("chart_number", f"Chart number {number} already belongs to a patient of this practice; it was not changed.")
            )


class ImportConflict(Exception):
    """Chart numbers were taken by someone else between the preview and the import."""


def import_valid_rows(report: ImportReport, *, batch_size: int = 1000) -> int:
    patients = [row.patient for row in report.valid_rows]
    try:
        with transaction.atomic():
            Patient.objects.bulk_create(patients, batch_size=batch_size)
    except IntegrityError as exc:
        raise ImportConflict(
            "Some chart numbers were added by someone else since the preview. Nothing was imported; "
            "upload the file again to see a fresh preview."
        ) from exc
    return len(patients)

