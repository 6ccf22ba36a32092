"""Staff-edited templates: the link must survive sanitising; values are never expanded as snippets."""

import datetime

import pytest
from django.core.exceptions import ValidationError

from invitations.wording.invitation_email import PreparedEmail, render
from invitations.wording.email_html import validate_template
from tests.factories import PracticeFactory

pytestmark = pytest.mark.django_db
EXPIRES = datetime.datetime(2026, 3, 9, tzinfo=datetime.timezone.utc)


def test_a_link_snippet_hidden_in_a_removed_tag_does_not_count():
    with pytest.raises(ValidationError) as excinfo:
        validate_template(subject="Your invitation", html_body="<p>Hi</p><script>[Registration Link]</script>")
    assert "[Registration Link]" in str(excinfo.value.message_dict["html_body"])


def test_a_first_name_that_looks_like_a_snippet_is_not_expanded():
    practice = PracticeFactory()
    rendered = render(practice=practice, first_name="[Registration Link]", link="https://x.test/invite/abc/", expires_at=EXPIRES)
    assert "[Registration Link]" in rendered.html  # shown as typed
    assert rendered.html.count("https://x.test/invite/abc/") == render(
        practice=practice, first_name="Ann", link="https://x.test/invite/abc/", expires_at=EXPIRES
    ).html.count("https://x.test/invite/abc/")


def test_prepared_emails_fill_each_placeholder_once():
    prepared = PreparedEmail(practice=PracticeFactory(), expires_at=EXPIRES, template=None)
    filled = prepared.fill(first_name="https://qqlinkqq.invalid/", link="https://x.test/invite/abc/")
    assert "https://qqlinkqq.invalid/" in filled.text
    assert "https://x.test/invite/abc/" in filled.text
