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
from django.utils import dateformat, translation
from django.utils.translation import gettext, pgettext

from core import languages
from invitations.wording.email_html import SNIPPET_RE, default_html_body, default_subject

@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def registration_url(token: str) -> str:
    return settings.PORTAL_BASE_URL + reverse("portal:register", args=[token])


def format_expiry(expires_at: datetime.datetime, time_zone: str) -> str:
    """The day a link stops working, in the active language: "Monday, December 14, 2026",
    "lunes, 14 de diciembre de 2026"."""
    local = expires_at.astimezone(zoneinfo.ZoneInfo(time_zone))
    return dateformat.format(local, pgettext("the date an invitation link expires, Django date format", "l, F j, Y"))


def contact_line(practice) -> str:
    if practice.contact_phone and practice.contact_email:
        return gettext("%(phone)s or %(email)s") % {"phone": practice.contact_phone, "email": practice.contact_email}
    return practice.contact_phone or practice.contact_email or gettext("by phone at the office")


#: The default notice of free language help (Section 1557 of the ACA): a line in the email's language,
#: then taglines in the languages most spoken in the US, as HHS's sample taglines word them.
LANGUAGE_HELP_TAGLINES = (
    "ATENCIÓN: si habla español, tiene a su disposición servicios gratuitos de asistencia lingüística. Llame al {phone}.",
    "注意：如果您使用繁體中文，您可以免費獲得語言援助服務。請致電 {phone}。",
    "CHÚ Ý: Nếu bạn nói Tiếng Việt, có các dịch vụ hỗ trợ ngôn ngữ miễn phí dành cho bạn. Gọi số {phone}.",
    "PAUNAWA: Kung nagsasalita ka ng Tagalog, maaari kang gumamit ng mga serbisyo ng tulong sa wika nang walang bayad. Tumawag sa {phone}.",
    "주의: 한국어를 사용하시는 경우, 언어 지원 서비스를 무료로 이용하실 수 있습니다. {phone} 번으로 전화해 주십시오.",
    "ВНИМАНИЕ: Если вы говорите на русском языке, то вам доступны бесплатные услуги перевода. Звоните {phone}.",
    "ATTENTION : Si vous parlez français, des services d'aide linguistique vous sont proposés gratuitement. Appelez le {phone}.",
    "ATANSYON: Si w pale Kreyòl Ayisyen, gen sèvis èd pou lang ki disponib gratis pou ou. Rele {phone}.",
    "ATENÇÃO: Se fala português, encontram-se disponíveis serviços linguísticos, grátis. Ligue para {phone}.",
)


def language_help_lines(practice) -> list[str]:
    """The practice's notice of free language help, line by line (its own text, else the default:
    a line in the email's language and the taglines, each with the practice's phone number)."""
    if practice.language_assistance_text.strip():
        return [line.strip() for line in practice.language_assistance_text.splitlines() if line.strip()]
    phone = practice.contact_phone or gettext("the practice")
    first = gettext("Language assistance services are available to you free of charge. Call %(phone)s.") % {"phone": phone}
    own = languages.supported(translation.get_language())
    return [first] + [line.format(phone=phone) for line in LANGUAGE_HELP_TAGLINES if not (own == "es" and line.startswith("ATENCIÓN"))]


def language_help_html(practice) -> str:
    if not practice.language_assistance_notice:
        return ""
    lines = "<br>".join(html.escape(line) for line in language_help_lines(practice))
    return f'<p style="font-size: 13px; color: #52606d; border-top: 1px solid #cbd2d9; padding-top: 12px;">{lines}</p>'


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
    """Fill a template for one recipient, in the template's language (the version
    `InvitationTemplate.choose` picked; without one, the shipped wording in the active language)."""
    language = getattr(template, "language", "") or translation.get_language()
    with languages.speaking(language):
        return _render(practice=practice, first_name=first_name, link=link, expires_at=expires_at, template=template)


def _render(*, practice, first_name: str, link: str, expires_at: datetime.datetime, template) -> RenderedEmail:
    subject_source = template.subject if template else default_subject()
    body_source = template.html_body if template else default_html_body()

    values = {
        "[First Name]": first_name or pgettext("greeting without a name: Hello there", "there"),
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
    html_body += language_help_html(practice)

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
    """The email for one claimed invitation, in the language of its version of the wording
    (`Invitation.wording`). Metadata carries only the opaque public id."""
    practice = invitation.practice
    template = template if template is not None else invitation.wording()
    with languages.speaking(invitation.language):
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
    # way out (core.sending.transports.email.prepare): it would route the token through a redirector.
    if public_id is not None:
        message.metadata = {"invitation": str(public_id)}
    message.tags = ["portal-invitation"]
    return message


class PreparedEmail:
    """A template rendered once for many recipients who share the practice and the expiry date
    (a bulk run's chunk); only the first name and the link differ (and, in a representative's
    email, the patient's first name: `PATIENT_FIRST_NAME` in the template). `fill` gives the same
    result as `render` for each recipient, without parsing the HTML again for every one of them."""

    _FIRST_NAME = "QQFIRSTNAMEQQ"
    _LINK = "https://qqlinkqq.invalid/"
    #: Where a representative's email names the patient (`invitations.wording.representatives`).
    PATIENT_FIRST_NAME = "QQPATIENTFIRSTNAMEQQ"
    _PLACEHOLDERS = re.compile(f"{re.escape(_FIRST_NAME)}|{re.escape(_LINK)}|{re.escape(PATIENT_FIRST_NAME)}")

    def __init__(self, *, practice, expires_at: datetime.datetime, template):
        rendered = render(practice=practice, first_name=self._FIRST_NAME, link=self._LINK, expires_at=expires_at, template=template)
        self.names_patient = self.PATIENT_FIRST_NAME in rendered.html
        # Filled by pool threads, which do not share this thread's language: the greeting for a
        # patient without a first name is taken now, in the template's language.
        with languages.speaking(getattr(template, "language", "") or translation.get_language()):
            self._nameless = pgettext("greeting without a name: Hello there", "there")
        self.subject = rendered.subject
        self._html = rendered.html
        self._text = rendered.text
        self.from_email = from_address(practice)
        self.reply_to = practice.contact_email
        self._link_prefix, self._link_suffix = registration_url("QQTOKENQQ").split("QQTOKENQQ")

    def link(self, token: str) -> str:
        """`registration_url(token)` without resolving the URL for every recipient."""
        return f"{self._link_prefix}{token}{self._link_suffix}"

    def message(self, *, to: str, first_name: str, token: str, public_id, patient_first_name: str = "") -> EmailMultiAlternatives:
        """The same email `build_message` makes for this recipient."""
        return _message(
            self.fill(first_name=first_name, link=self.link(token), patient_first_name=patient_first_name),
            from_email=self.from_email, to=[to], reply_to=self.reply_to, public_id=public_id,
        )

    def batch_message(self, recipients: list["Recipient"], merge) -> EmailMultiAlternatives:
        """One message for many recipients, for a provider that fills per-recipient fields
        itself (`core.sending.transports.email_providers`): each recipient gets the email
        `message` would make for them, with their own first name, link and metadata (the
        invitation's opaque id)."""
        markers = {
            "text": {self._FIRST_NAME: merge.field("first_name"), self._LINK: merge.field("link"),
                     self.PATIENT_FIRST_NAME: merge.field("patient_first_name")},
            "html": {self._FIRST_NAME: merge.field("first_name_html"), self._LINK: merge.field("link_html"),
                     self.PATIENT_FIRST_NAME: merge.field("patient_first_name_html")},
        }
        rendered = RenderedEmail(
            subject=self.subject,
            text=self._PLACEHOLDERS.sub(lambda match: markers["text"][match.group(0)], self._text),
            html=self._PLACEHOLDERS.sub(lambda match: markers["html"][match.group(0)], self._html),
        )
        message = _message(rendered, from_email=self.from_email, to=[r.to for r in recipients], reply_to=self.reply_to)
        merge_data, merge_metadata = {}, {}
        for recipient in recipients:
            first_name, link = recipient.first_name or self._nameless, self.link(recipient.token)
            merge_data[recipient.to] = {
                merge.key("first_name"): first_name, merge.key("first_name_html"): html.escape(first_name),
                merge.key("link"): link, merge.key("link_html"): html.escape(link),
            }
            if self.names_patient:
                merge_data[recipient.to].update({
                    merge.key("patient_first_name"): recipient.patient_first_name,
                    merge.key("patient_first_name_html"): patient_name_html(recipient.patient_first_name),
                })
            merge_metadata[recipient.to] = {"invitation": str(recipient.public_id)}
        message.merge_data = merge_data
        message.merge_metadata = merge_metadata
        return message

    def fill(self, *, first_name: str, link: str, patient_first_name: str = "") -> RenderedEmail:
        first_name = first_name or self._nameless
        text_values = {self._FIRST_NAME: first_name, self._LINK: link, self.PATIENT_FIRST_NAME: patient_first_name}
        html_values = {
            self._FIRST_NAME: html.escape(first_name), self._LINK: html.escape(link),
            self.PATIENT_FIRST_NAME: patient_name_html(patient_first_name),
        }
        return RenderedEmail(
            subject=self.subject,
            text=self._PLACEHOLDERS.sub(lambda match: text_values[match.group(0)], self._text),
            html=self._PLACEHOLDERS.sub(lambda match: html_values[match.group(0)], self._html),
        )


def patient_name_html(first_name: str) -> str:
    """A patient's first name in a representative's email: escaped, and brackets as entities so that
    a name can never look like a snippet."""
    return html.escape(first_name).replace("[", "&#91;").replace("]", "&#93;")


@dataclass(frozen=True)
class Recipient:
    """One claimed invitation of a bulk run's chunk: what its email needs."""

    pk: int
    to: str
    first_name: str
    token: str
    public_id: object
    expires_at: datetime.datetime
    language: str = ""  # the invitation's (the patient's) language
    #: An invitation to a representative (`first_name` is theirs): the patient's first name, which
    #: their email names (`invitations.wording.representatives.ChunkComposer`). None: the patient's own.
    patient_first_name: Optional[str] = None

    @property
    def for_representative(self) -> bool:
        return self.patient_first_name is not None


class ChunkComposer:
    """Writes the emails of one chunk for the email transport (`core.sending.transports.email.Composer`):
    the template is rendered once per expiry date (everyone in a chunk normally shares it), then
    filled per recipient or handed to the provider as one batch with per-recipient fields."""

    def __init__(self, *, practice, template=None, choose=None):
        """`template` for everyone, or `choose(language)` giving each language's version (each
        patient's email is then written in their language: `InvitationTemplate.choose`)."""
        self.practice = practice
        self._choose = choose or (lambda language: template)
        self._prepared: dict[tuple[datetime.datetime, str], PreparedEmail] = {}

    @staticmethod
    def group(recipient: Recipient) -> tuple[datetime.datetime, str]:
        """Recipients one rendering (and one provider batch) serves: the same expiry and language."""
        return recipient.expires_at, recipient.language

    def _for(self, recipient: Recipient) -> PreparedEmail:
        # Rendered by the calling thread before sending starts (`prepare`), read by pool threads.
        key = self.group(recipient)
        if key not in self._prepared:
            self._prepared[key] = PreparedEmail(
                practice=self.practice, expires_at=recipient.expires_at, template=self._choose(recipient.language),
            )
        return self._prepared[key]

    def prepare(self, recipients: list[Recipient]) -> None:
        for recipient in recipients:
            self._for(recipient)

    def message(self, item) -> EmailMultiAlternatives:
        recipient: Recipient = item.payload
        return self._for(recipient).message(
            to=recipient.to, first_name=recipient.first_name, token=recipient.token, public_id=recipient.public_id,
        )

    def batch(self, items, merge) -> EmailMultiAlternatives:
        recipients = [item.payload for item in items]
        return self._for(recipients[0]).batch_message(recipients, merge)
