"""What an invitation text says: the practice's wording with bracketed snippets (never template
language), always one GSM-7 message (160 characters) with the link, with no health information.

Staff may edit the wording per practice (`InvitationTemplate.text_body`, checked by
`validate_text_body` with the practice's own name and a link of the real length). Should a text
still come out longer (the practice was renamed, the portal's address changed), `compose` falls
back to the default wording, then to a shortened practice name, so a patient never gets a split
or garbled message.
"""

import re
import unicodedata

from django.conf import settings
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.translation import gettext, gettext_noop

from core.sending.text_segments import GSM7_SINGLE, measure, non_gsm7

from invitations.vocabulary import TEXT_TOKEN_BYTES, new_token

LINK_SNIPPET = "[Registration Link]"
TEXT_SNIPPETS = ("[Practice Name]", "[Practice Phone]", LINK_SNIPPET)
# The shipped wording (English here, translated in the catalogs; every translation stays in GSM-7:
# Spanish without á í ó ú, which would make the text UCS-2). `default_text_body()` is it in the active language.
DEFAULT_TEXT_BODY = gettext_noop("[Practice Name]: set up your patient portal account: [Registration Link] Reply STOP to opt out.")
_LAST_RESORT_BODY = gettext_noop("[Registration Link] Reply STOP to opt out.")
_SNIPPET_RE = re.compile(r"\[[^\[\]\n]{1,40}\]")
_TEMPLATE_LANGUAGE_RE = re.compile(r"\{\{|\{%|%\}|\}\}")


def default_text_body() -> str:
    """The shipped text wording in the active language."""
    return gettext(DEFAULT_TEXT_BODY)


def text_link(token: str) -> str:
    """The short registration link a text carries (the same page as the email's link)."""
    return settings.PORTAL_BASE_URL + reverse("portal:register_text", args=[token])


#: Typographic punctuation (common in names typed on phones and Macs) as its plain GSM-7 form.
_PLAIN_PUNCTUATION = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-", "\u2026": "...", "\u00a0": " ",
})
#: Who the text is from when nothing of the practice's name can be written in GSM-7.
UNNAMED_PRACTICE = "Your practice"


def _plain(name: str) -> str:
    """A practice name in GSM-7: typographic quotes and dashes as plain ones, accents dropped
    where the letter is not in the alphabet, anything else left out."""
    if not non_gsm7(name):
        return name
    name = name.translate(_PLAIN_PUNCTUATION)
    decomposed = unicodedata.normalize("NFKD", name) if non_gsm7(name) else name
    return "".join(c for c in decomposed if not unicodedata.combining(c) and not non_gsm7(c))


def practice_name(practice) -> str:
    """The practice's name as a text shows it (never empty: a text says who it is from)."""
    return " ".join(_plain(practice.name).split()) or UNNAMED_PRACTICE


def render(body: str, *, practice, link: str, shown_name: str = "") -> str:
    replacements = {
        "[Practice Name]": shown_name or practice_name(practice),
        "[Practice Phone]": _plain(practice.contact_phone or ""),
        LINK_SNIPPET: link,
    }
    text = _SNIPPET_RE.sub(lambda match: replacements.get(match.group(0), match.group(0)), body)
    return " ".join(text.split())


def fits(text: str) -> bool:
    size = measure(text)
    return size.encoding == "GSM-7" and size.segments <= 1


def compose(practice, body: str, token: str) -> str:
    """The text for one patient: the practice's wording (or the default) with the link; always
    one GSM-7 message (module docstring)."""
    link = text_link(token)
    default = default_text_body()
    for wording in (body or default, default):
        text = render(wording, practice=practice, link=link)
        if fits(text):
            return text
    name = practice_name(practice)
    while len(name) > 3:
        name = name[: len(name) - 4].rstrip() + "..."
        text = render(default, practice=practice, link=link, shown_name=name)
        if fits(text):
            return text
    return render(gettext(_LAST_RESORT_BODY), practice=practice, link=link)


def sample(practice, body: str) -> str:
    """The text as a patient would read it, with a link of the real length (the editor's preview)."""
    return render(body or default_text_body(), practice=practice, link=text_link(new_token(TEXT_TOKEN_BYTES)))


def cost(text: str) -> str:
    """What a text costs, in words staff can act on: its encoding, its length and how many messages
    (each billed as one) it goes as."""
    size = measure(text)
    messages = f"{size.segments} message{'s' if size.segments != 1 else ''} per patient"
    if size.encoding == "GSM-7":
        return f"{size.units} characters in plain letters (GSM-7: {GSM7_SINGLE} a message, 153 each when split): {messages}."
    odd = non_gsm7(text)
    return (
        f"{size.units} characters, and {' '.join(odd)} make{'s' if len(odd) == 1 else ''} it a UCS-2 text "
        f"(70 characters a message, 67 each when split): {messages}."
    )


def validate_text_body(body: str, *, practice) -> None:
    """Staff wording for the invitation text: known snippets, the link, the practice's name and
    how to opt out (STOP), plain GSM-7 characters, and one message long with this practice's name
    and the link."""
    body = " ".join((body or "").split())  # as it is saved
    if not body:
        return  # the default wording
    if _TEMPLATE_LANGUAGE_RE.search(body):
        raise ValidationError("Use bracketed snippets such as [Practice Name], not {{ }} or {% %}.")
    unknown = sorted({s for s in _SNIPPET_RE.findall(body) if s not in TEXT_SNIPPETS})
    if unknown:
        raise ValidationError(f"Unknown snippet {', '.join(unknown)}. Use only {', '.join(TEXT_SNIPPETS)}.")
    if LINK_SNIPPET not in body:
        raise ValidationError(f"The text must contain {LINK_SNIPPET}: it is how the patient registers.")
    odd = non_gsm7(body)
    if odd:
        shown = " ".join(dict.fromkeys(odd))
        spanish = any(c in "áíóúÁÍÓÚ" for c in odd)
        raise ValidationError(
            f"These characters would turn the text into a longer, costlier message: {shown}. With them it is a UCS-2 "
            f"text (70 characters a message instead of {GSM7_SINGLE}): with this practice's name and the link, "
            f"{measure(sample(practice, body)).segments} messages per patient, each billed. Use plain letters and "
            "punctuation to keep it to one message."
            + (" In Spanish write a, i, o, u for á, í, ó, ú (é, ñ, ü, ¿ and ¡ are fine)." if spanish else "")
        )
    size = measure(sample(practice, body))
    if size.segments > 1 or size.encoding != "GSM-7":
        raise ValidationError(
            f"With this practice's name and the link the text is {size.units} characters; "
            f"keep it to {GSM7_SINGLE} (one text message): {size.units - GSM7_SINGLE} too many."
        )
    # Carriers expect a text to name who sends it and how to stop them (CTIA's messaging principles).
    if "[Practice Name]" not in body:
        raise ValidationError("The text must contain [Practice Name]: patients and carriers need to know who is texting.")
    if not re.search(r"\bSTOP\b", body):
        raise ValidationError("The text must tell patients how to opt out, e.g. “Reply STOP to opt out.”")
