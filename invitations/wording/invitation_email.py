"""The invitation email: rendering a template for one patient or a chunk of them, and the messages.

Snippets are replaced by plain string substitution with HTML-escaped values, so a template can
never run code or reach data other than the few values listed in `invitations.wording.email_html`.
"""

import datetime
import html
import re
import zoneinfo
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from html.parser import HTMLParser
from typing import Optional

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from invitations.wording.email_html import DEFAULT_HTML_BODY, DEFAULT_SUBJECT, SNIPPET_RE

@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def registration_url(token: str) -> str:
    return settings.PORTAL_BASE_URL + reverse("portal:register", args=[token])


def format_expiry(expires_at: datetime.datetime, time_zone: str) -> str:
    local = expires_at.astimezone(zoneinfo.ZoneInfo(time_zone))
    return f"{local:%A, %B} {local.day}, {local:%Y}"


def contact_line(practice) -> str:
    parts = [p for p in (practice.contact_phone, practice.contact_email) if p]
    return " or ".join(parts) if parts else "by phone at the office"


def logo_html(practice) -> str:
    if not practice.logo:
        return ""
    src = practice.logo.url
    if not src.startswith(("http://", "https://")):
        src = settings.PORTAL_BASE_URL + "/" + src.lstrip("/")
    return (
        f'<p><img src="{html.escape(src)}" alt="{html.escape(practice.name)}" '
        'style="max-width: 200px; height: auto;"></p>'
    )


def render(*, practice, first_name: str, link: str, expires_at: datetime.datetime, template=None) -> RenderedEmail:
    """Fill a template (the practice's, else the default) for one recipient."""
    if template is None:
        template = getattr(practice, "invitation_template", None) if practice.pk else None
    subject_source = template.subject if template else DEFAULT_SUBJECT
    body_source = template.html_body if template else DEFAULT_HTML_BODY

    values = {
        "[First Name]": first_name or "there",
        "[Practice Name]": practice.name,
        "[Practice Contact]": contact_line(practice),
        "[Registration Link]": link,
        "[Expiry Date]": format_expiry(expires_at, practice.time_zone),
    }
    replacements = {snippet: html.escape(value) for snippet, value in values.items()}
    replacements["[Logo]"] = logo_html(practice)
    # One pass: a value that itself looks like a snippet (a first name typed as
    # "[Registration Link]" on the public access form) is never expanded.
    html_body = SNIPPET_RE.sub(lambda match: replacements.get(match.group(0), match.group(0)), body_source)

    subject = subject_source.replace("[Practice Name]", practice.name)
    subject = " ".join(subject.split())  # never a newline in a header
    return RenderedEmail(subject=subject, text=html_to_text(html_body), html=html_body)


class _TextExtractor(HTMLParser):
    _BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "li", "tr", "table", "blockquote", "hr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._href: Optional[str] = None
        self._link_text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a":
            self._href = dict(attrs).get("href")
            self._link_text = []
        elif tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            label = " ".join("".join(self._link_text).split())
            if label and label != self._href:
                self.parts.append(f"{label}: {self._href}")
            else:
                self.parts.append(self._href)
            self._href = None
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._href is not None:
            self._link_text.append(data)
        else:
            self.parts.append(data)


def html_to_text(body: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(body)
    extractor.close()
    text = "".join(extractor.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def from_address(practice) -> str:
    """The practice's name with the project's sending address."""
    _name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    name = " ".join(practice.name.split())
    return formataddr((name, address)) if address else settings.DEFAULT_FROM_EMAIL


def greeting_name(first_name: str, *, unverified: bool) -> str:
    """The first name an email may greet with. A chart made by the public "Request portal access"
    form holds whatever the visitor typed, and the practice would email it to any address they
    gave: those emails carry no visitor-supplied text ("Hello there") until staff verify the chart."""
    return "" if unverified else first_name


def build_message(invitation, token: str, *, template=None) -> EmailMultiAlternatives:
    """The email for one claimed invitation. Metadata carries only the opaque public id."""
    practice = invitation.practice
    rendered = render(
        practice=practice,
        first_name=greeting_name(invitation.patient.first_name, unverified=invitation.patient.self_signup_unverified),
        link=registration_url(token),
        expires_at=invitation.expires_at,
        template=template,
    )
    return _message(
        rendered, from_email=from_address(practice), to=[invitation.email],
        reply_to=practice.contact_email, public_id=invitation.public_id,
    )


def _message(rendered: RenderedEmail, *, from_email: str, to: list[str], reply_to: str, public_id=None) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=from_email,
        to=to,
        reply_to=[reply_to] if reply_to else None,
    )
    message.attach_alternative(rendered.html, "text/html")
    # Read by anymail backends, ignored by Django's own. Click tracking is turned off on the
    # way out (core.sending.outbox.prepare): it would route the token through a redirector.
    if public_id is not None:
        message.metadata = {"invitation": str(public_id)}
    message.tags = ["portal-invitation"]
    return message


class PreparedEmail:
    """A template rendered once for many recipients who share the practice and the expiry date
    (a bulk run's chunk); only the first name and the link differ. `fill` gives the same result
    as `render` for each recipient, without parsing the HTML again for every one of them."""

    _FIRST_NAME = "QQFIRSTNAMEQQ"
    _LINK = "https://qqlinkqq.invalid/"
    _PLACEHOLDERS = re.compile(f"{re.escape(_FIRST_NAME)}|{re.escape(_LINK)}")

    def __init__(self, *, practice, expires_at: datetime.datetime, template):
        rendered = render(practice=practice, first_name=self._FIRST_NAME, link=self._LINK, expires_at=expires_at, template=template)
        self.subject = rendered.subject
        self._html = rendered.html
        self._text = rendered.text
        self.from_email = from_address(practice)
        self.reply_to = practice.contact_email
        self._link_prefix, self._link_suffix = registration_url("QQTOKENQQ").split("QQTOKENQQ")

    def link(self, token: str) -> str:
        """`registration_url(token)` without resolving the URL for every recipient."""
        return f"{self._link_prefix}{token}{self._link_suffix}"

    def message(self, *, to: str, first_name: str, token: str, public_id) -> EmailMultiAlternatives:
        """The same email `build_message` makes for this recipient."""
        return _message(
            self.fill(first_name=first_name, link=self.link(token)),
            from_email=self.from_email, to=[to], reply_to=self.reply_to, public_id=public_id,
        )

    def batch_message(self, recipients: list["Recipient"], merge) -> EmailMultiAlternatives:
        """One message for many recipients, for a provider that fills per-recipient fields
        itself (`core.sending.providers`): each recipient gets the email `message` would make for
        them, with their own first name, link and metadata (the invitation's opaque id)."""
        markers = {
            "text": {self._FIRST_NAME: merge.field("first_name"), self._LINK: merge.field("link")},
            "html": {self._FIRST_NAME: merge.field("first_name_html"), self._LINK: merge.field("link_html")},
        }
        rendered = RenderedEmail(
            subject=self.subject,
            text=self._PLACEHOLDERS.sub(lambda match: markers["text"][match.group(0)], self._text),
            html=self._PLACEHOLDERS.sub(lambda match: markers["html"][match.group(0)], self._html),
        )
        message = _message(rendered, from_email=self.from_email, to=[r.to for r in recipients], reply_to=self.reply_to)
        merge_data, merge_metadata = {}, {}
        for recipient in recipients:
            first_name, link = recipient.first_name or "there", self.link(recipient.token)
            merge_data[recipient.to] = {
                merge.key("first_name"): first_name, merge.key("first_name_html"): html.escape(first_name),
                merge.key("link"): link, merge.key("link_html"): html.escape(link),
            }
            merge_metadata[recipient.to] = {"invitation": str(recipient.public_id)}
        message.merge_data = merge_data
        message.merge_metadata = merge_metadata
        return message

    def fill(self, *, first_name: str, link: str) -> RenderedEmail:
        first_name = first_name or "there"
        text_values = {self._FIRST_NAME: first_name, self._LINK: link}
        html_values = {self._FIRST_NAME: html.escape(first_name), self._LINK: html.escape(link)}
        return RenderedEmail(
            subject=self.subject,
            text=self._PLACEHOLDERS.sub(lambda match: text_values[match.group(0)], self._text),
            html=self._PLACEHOLDERS.sub(lambda match: html_values[match.group(0)], self._html),
        )


@dataclass(frozen=True)
class Recipient:
    """One claimed invitation of a bulk run's chunk: what its email needs."""

    pk: int
    to: str
    first_name: str
    token: str
    public_id: object
    expires_at: datetime.datetime


class ChunkComposer:
    """Writes the emails of one chunk for `core.sending.outbox`: the template is rendered once per
    expiry date (everyone in a chunk normally shares it), then filled per recipient or handed to
    the provider as one batch with per-recipient fields."""

    def __init__(self, *, practice, template):
        self.practice = practice
        self.template = template
        self._prepared: dict[datetime.datetime, PreparedEmail] = {}

    def _for(self, expires_at: datetime.datetime) -> PreparedEmail:
        # Rendered by the calling thread before sending starts (`prepare`), read by pool threads.
        if expires_at not in self._prepared:
            self._prepared[expires_at] = PreparedEmail(practice=self.practice, expires_at=expires_at, template=self.template)
        return self._prepared[expires_at]

    def prepare(self, recipients: list[Recipient]) -> None:
        for recipient in recipients:
            self._for(recipient.expires_at)

    def message(self, item) -> EmailMultiAlternatives:
        recipient: Recipient = item.payload
        return self._for(recipient.expires_at).message(
            to=recipient.to, first_name=recipient.first_name, token=recipient.token, public_id=recipient.public_id,
        )

    def batch(self, items, merge) -> EmailMultiAlternatives:
        recipients = [item.payload for item in items]
        return self._for(recipients[0].expires_at).batch_message(recipients, merge)
