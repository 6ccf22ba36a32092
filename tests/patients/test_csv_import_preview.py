"""What the front desk sees: the import form's column guide and the preview before importing."""

import pytest
from django.urls import reverse

from patients import imports
from tests.patients.test_csv_import import BAD, GOOD, GOOD_US_DATE, HEADER, upload

pytestmark = pytest.mark.django_db


def test_the_preview_lists_the_rows_that_will_be_imported_and_the_counts(client_a, practice_a):
    response = upload(client_a, practice_a, HEADER + GOOD + GOOD_US_DATE + BAD)
    content = response.content.decode()
    assert "<strong>2</strong> patients are ready to import" in content
    assert "<strong>1</strong> row has errors and will be skipped" in content
    assert "Will be imported: 2 patients" in content and "Will be skipped: 1 row" in content
    imported = content[content.index("Will be imported"):]
    for text in ("A100", "Ann Lee", "May 17, 1980", "ann@example.com", "A101", "Bo Kim", "May 17, 1975"):
        assert text in imported
    assert "A102" not in imported
    assert "Import 2 patients" in content


def test_the_preview_shows_each_problem_with_its_value_and_fix(client_a, practice_a):
    response = upload(client_a, practice_a, HEADER + GOOD.replace("1980-05-17", "31/02/1980"))
    content = response.content.decode()
    assert "No row can be imported" in content
    assert "“31/02/1980” is not a date" in content
    assert "YYYY-MM-DD, MM/DD/YYYY, MM/DD/YY or MM-DD-YYYY" in content
    assert "date of birth" in content


def test_values_from_the_file_are_escaped(client_a, practice_a):
    response = upload(client_a, practice_a, HEADER + GOOD.replace("Ann@Example.com", "<script>alert(1)</script>"))
    content = response.content.decode()
    assert "<script>alert(1)" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_the_preview_lists_at_most_200_rows_then_says_how_many_more(client_a, practice_a):
    rows = "".join(f"C{i},First{i},Last{i},1980-01-01,02139,p{i}@example.com,,F,yes,no\n" for i in range(205))
    response = upload(client_a, practice_a, HEADER + rows)
    content = response.content.decode()
    assert ">C199<" in content and ">C200<" not in content
    assert "… and 5 more." in content
    assert "Import 205 patients" in content


def test_the_preview_says_how_the_file_was_read(client_a, practice_a):
    response = upload(client_a, practice_a, (HEADER + GOOD).replace(",", ";").encode("cp1252"))
    assert "Read as UTF-8 text, with columns separated by semicolons." in response.content.decode()


def test_the_form_explains_columns_formats_and_what_an_invitation_needs(client_a):
    content = client_a.get(reverse("admin:patients_patient_import")).content.decode()
    for column in imports.COLUMNS:
        assert f"<code>{column}</code>" in content
    assert "chart_number</code> <strong>(required)</strong>" in content
    assert "YYYY-MM-DD, MM/DD/YYYY, MM/DD/YY or MM-DD-YYYY" in content
    assert "DOB, Birth Date" in content
    needed = [column for column in imports.COLUMNS if column.for_invitation]
    assert [c.label for c in needed] == [
        "first name", "last name", "date of birth", "zip code", "email", "birth sex", "email consent",
    ]
    assert content.count("<td>Yes</td>") == len(needed)
