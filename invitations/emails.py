"""The invitation email: snippets, the default template, sanitising and rendering.

Staff templates use bracketed snippets such as ``[First Name]``. They are replaced by plain
string substitution with HTML-escaped values, so a template can never run code or reach data
other than the few values listed here. No last name, date of birth or health information is
ever offered as a snippet.
"""

import datetime
import html
import re
import zoneinfo
from collections import Counter
from dataclasses import dataclass
from email.utils import formataddr, parseaddr
from html.parser import HTMLParser
from typing import Optional

import nh3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

SNIPPETS = {
    "[First Name]": "the patient's first name",
    "[Practice Name]": "the practice's name",
    "[Practice Contact]": "the practice's phone number and email address",
    "[Registration Link]": "the patient's personal registration link (required)",
    "[Expiry Date]": "the date the link stops working",
    "[Logo]": "the practice's logo (nothing if none is uploaded)",
}
SUBJECT_SNIPPETS = {"[Practice Name]"}
REQUIRED_SNIPPET = "[Registration Link]"
_SNIPPET_RE = re.compile(r"\[[^\[\]\n]{1,40}\]")
_TEMPLATE_LANGUAGE_RE = re.compile(r"\{\{|\{%|%\}|\}\}")

DEFAULT_SUBJECT = "Your patient portal invitation from [Practice Name]"
DEFAULT_HTML_BODY = """\
<div style="font-family: Arial, Helvetica, sans-serif; font-size: 16px; line-height: 1.5; color: #1f2933; max-width: 560px;">
[Logo]
<p>Hello [First Name],</p>
<p>[Practice Name] invites you to set up your patient portal account. In the portal you can see your details and hear from the practice online.</p>
<p><a href="[Registration Link]" style="display: inline-block; background-color: #0b5cad; color: #ffffff; padding: 12px 20px; border-radius: 4px; text-decoration: none; font-weight: bold;">Set up my portal account</a></p>
<p>If the button does not work, copy this address into your browser:<br>[Registration Link]</p>
<p>To keep your information safe we will ask for your last name and date of birth. The link works once and expires on <strong>[Expiry Date]</strong>.</p>
<p>Did not expect this email? You can ignore it. Questions? Contact [Practice Name]: [Practice Contact].</p>
</div>
"""

_ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "center", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "img", "li",
    "ol", "p", "small", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}
_ALLOWED_ATTRIBUTES = {
    "*": {"style", "align", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "width"},
    "th": {"colspan", "rowspan", "width"},
    "table": {"width", "cellpadding", "cellspacing", "border", "role"},
}
_ALLOWED_CSS = {
    "background-color", "border", "border-radius", "color", "display", "font-family", "font-size",
    "font-style", "font-weight", "height", "line-height", "margin", "margin-bottom", "margin-top",
    "max-width", "padding", "text-align", "text-decoration", "width",
}


_SANITISER = {
    "tags": _ALLOWED_TAGS,
    "attributes": _ALLOWED_ATTRIBUTES,
    "filter_style_properties": _ALLOWED_CSS,
    "url_schemes": {"https", "http", "mailto"},
    "link_rel": "noopener noreferrer",
    "strip_comments": True,
}


def sanitise_html(body: str) -> str:
    return nh3.clean(body or "", **_SANITISER)


# -- what the sanitiser removed, in words staff understand ------------------------------------

_SCRIPT_REASON = "emails cannot run scripts"
_TAG_REASONS = {
    **dict.fromkeys(("script", "noscript"), _SCRIPT_REASON),
    "style": 'email programs ignore style sheets; put style="..." on each element instead',
    **dict.fromkeys(("form", "input", "button", "select", "option", "textarea", "label", "fieldset"), "emails cannot hold forms"),
    **dict.fromkeys(
        ("iframe", "frame", "frameset", "object", "embed", "video", "audio", "source", "canvas", "svg", "math"),
        "emails cannot embed other content",
    ),
    **dict.fromkeys(
        ("html", "head", "body", "meta", "title", "link", "base"),
        "write only what goes inside the email's body",
    ),
}
_URL_ATTRIBUTES = {"href", "src"}
# Python's parser finds the tag name the same way: `html.parser.tagfind_tolerant`.
_TAG_NAME_RE = re.compile(r"<[a-zA-Z][^\t\n\r\f />\x00]*")
_MARK = "data-sanitiser-report-id"


class _Elements(HTMLParser):
    """The start tags of a piece of HTML, in order, with where each one's name ends."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self._line_starts = [0] + [i + 1 for i, char in enumerate(source) if char == "\n"]
        self.elements: list[tuple[str, dict[str, str], int]] = []
        self.comments = 0
        self.feed(source)
        self.close()

    def handle_starttag(self, tag, attrs):
        line, column = self.getpos()
        name_end = self._line_starts[line - 1] + column + len(_TAG_NAME_RE.match(self.get_starttag_text()).group(0))
        attributes: dict[str, str] = {}
        for name, value in attrs:
            attributes.setdefault(name, value or "")  # the first of a repeated attribute counts, as in browsers
        self.elements.append((tag, attributes, name_end))

    handle_startendtag = handle_starttag

    def handle_comment(self, data):
        self.comments += 1


def _style_properties(style: str) -> list[str]:
    names = (declaration.partition(":")[0].strip().lower() for declaration in style.split(";"))
    return [name for name in names if name]


def _scheme(url: str) -> str:
    # Browsers ignore tabs, newlines and leading spaces in a URL's scheme ("java\tscript:").
    url = re.sub(r"[\t\n\r]", "", url).lstrip(" \x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f").lower()
    scheme, colon, _rest = url.partition(":")
    return scheme if colon and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) else ""


def _tag_removed(tag: str) -> str:
    if tag in _TAG_REASONS:
        return f"<{tag}> removed: {_TAG_REASONS[tag]}"
    if tag in _ALLOWED_TAGS:
        return f"<{tag}> removed: it sat where HTML does not allow it"
    return f"<{tag}> removed: not allowed in the email (the text inside it is kept)"


def _attribute_removed(tag: str, name: str, value: str) -> str:
    if name.startswith("on"):
        return f"{name} on <{tag}> removed: {_SCRIPT_REASON}"
    if name in _URL_ATTRIBUTES and _scheme(value) == "javascript":
        return f"a javascript: link removed from <{tag}>: {_SCRIPT_REASON}"
    if name in _ALLOWED_ATTRIBUTES["*"] | _ALLOWED_ATTRIBUTES.get(tag, set()):
        return f"{name} on <{tag}> removed: addresses must start with https://, http:// or mailto:"
    if name in {"class", "id"}:
        return f'{name} on <{tag}> removed: use style="..." on the element instead'
    return f"{name} on <{tag}> removed: not allowed in the email"


def removed_by_sanitiser(body: str) -> list[str]:
    """What `sanitise_html` leaves out of `body`, one plain sentence per kind of removal.

    Not a second set of rules: every start tag is marked with a numbered attribute, the marked
    HTML goes through the sanitiser with the same settings (plus the mark), and each element is
    compared with what came out under its number.
    """
    body = body or ""
    written = _Elements(body)
    marked, start = [], 0
    for number, (_tag, _attributes, name_end) in enumerate(written.elements):
        marked.append(f'{body[start:name_end]} {_MARK}="{number}"')
        start = name_end
    marked.append(body[start:])
    attributes = {tag: names | {_MARK} for tag, names in _ALLOWED_ATTRIBUTES.items()}
    kept = {
        attrs[_MARK]: attrs
        for _tag, attrs, _end in _Elements(nh3.clean("".join(marked), **{**_SANITISER, "attributes": attributes})).elements
        if _MARK in attrs
    }

    removals: Counter[str] = Counter()
    for number, (tag, attrs, _end) in enumerate(written.elements):
        kept_attrs = kept.get(str(number))
        if kept_attrs is None:
            removals[_tag_removed(tag)] += 1
            continue
        for name, value in attrs.items():
            if name == "style" and "style" in kept_attrs:
                kept_properties = set(_style_properties(kept_attrs["style"]))
                dropped = dict.fromkeys(p for p in _style_properties(value) if p not in kept_properties)
                sentences = [f"style property {p} removed: not supported in the email" for p in dropped]
            elif name == _MARK or name not in kept_attrs:
                sentences = [_attribute_removed(tag, name, value)]
            else:
                sentences = []
            removals.update(sentences)
    if written.comments:
        removals["HTML comments <!-- --> removed: they are not sent"] = written.comments
    return [sentence if count == 1 else f"{sentence} ({count} times)" for sentence, count in removals.items()]


def validate_template(*, subject: str, html_body: str) -> None:
    errors: dict[str, list[str]] = {}
    subject = subject or ""
    if "\n" in subject or "\r" in subject:
        errors.setdefault("subject", []).append("Email subject must not contain newlines.")
    for snippet in _SNIPPET_RE.findall(subject):
        if snippet not in SUBJECT_SNIPPETS:
            errors.setdefault("subject", []).append(
                f"{snippet} cannot be used in the subject; only [Practice Name] can."
            )
    unknown = sorted({s for s in _SNIPPET_RE.findall(html_body or "") if s not in SNIPPETS})
    if unknown:
        errors.setdefault("html_body", []).append(
            f"Unknown snippet{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}. "
            f"Use only {', '.join(SNIPPETS)}."
        )
    # Checked on what will be saved: the sanitiser drops <script> and the like with their content.
    if REQUIRED_SNIPPET not in sanitise_html(html_body or ""):
        errors.setdefault("html_body", []).append(
            "Add [Registration Link] to the visible text: without it the patient cannot register."
        )
    for field, value in (("subject", subject), ("html_body", html_body or "")):
        if _TEMPLATE_LANGUAGE_RE.search(value):
            errors.setdefault(field, []).append(
                "Use bracketed snippets such as [First Name]; {{ }} and {% %} are not supported."
            )
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def registration_url(token: str) -> str:
    return settings.PORTAL_BASE_URL + reverse("invitations:register", args=[token])


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


def default_template():
    """An unsaved template holding the default wording (for practices without their own)."""
    from .models import InvitationTemplate

    return InvitationTemplate(subject=DEFAULT_SUBJECT, html_body=DEFAULT_HTML_BODY)


def template_for(practice):
    """The practice's template, else the default one: one query, never None."""
    from .models import InvitationTemplate

    return InvitationTemplate.objects.filter(practice_id=practice.pk).first() or default_template()


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
    html_body = _SNIPPET_RE.sub(lambda match: replacements.get(match.group(0), match.group(0)), body_source)

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
