"""What staff write for the invitation email: the bracketed snippets, the default wording, the
sanitiser and the checks a template must pass.

Staff templates use bracketed snippets such as ``[First Name]``, never template language. The HTML
is sanitised with nh3 on save, and `removed_by_sanitiser` says in words what that takes out. No last
name, date of birth or health information is ever offered as a snippet. Rendering and sending are
`invitations.wording.invitation_email`.
"""

import re
from collections import Counter
from html.parser import HTMLParser

import nh3
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_noop

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
SNIPPET_RE = re.compile(r"\[[^\[\]\n]{1,40}\]")
_TEMPLATE_LANGUAGE_RE = re.compile(r"\{\{|\{%|%\}|\}\}")

# The shipped wording, written in English and translated in the catalogs (locale/): the snippets stay
# as they are in every language. `default_subject()` and `default_html_body()` give it in the
# language that is active; DEFAULT_SUBJECT and DEFAULT_HTML_BODY are the English.
DEFAULT_SUBJECT = gettext_noop("Your patient portal invitation from [Practice Name]")
_DEFAULT_SENTENCES = {
    "hello": gettext_noop("Hello [First Name],"),
    "invites": gettext_noop(
        "[Practice Name] invites you to set up your patient portal account. In the portal you can see your "
        "details and hear from the practice online."
    ),
    "button": gettext_noop("Set up my portal account"),
    "copy": gettext_noop("If the button does not work, copy this address into your browser:"),
    "safe": gettext_noop(
        "To keep your information safe we will ask for your last name and date of birth. The link works once "
        "and expires on <strong>[Expiry Date]</strong>."
    ),
    "questions": gettext_noop(
        "Did not expect this email? You can ignore it. Questions? Contact [Practice Name]: [Practice Contact]."
    ),
}
#: The shipped emails' layout (a patient's invitation, and a representative's: `wording.representatives`).
EMAIL_LAYOUT = """\
<div style="font-family: Arial, Helvetica, sans-serif; font-size: 16px; line-height: 1.5; color: #1f2933; max-width: 560px;">
[Logo]
<p>{hello}</p>
<p>{invites}</p>
<p><a href="[Registration Link]" style="display: inline-block; background-color: #0b5cad; color: #ffffff; padding: 12px 20px; border-radius: 4px; text-decoration: none; font-weight: bold;">{button}</a></p>
<p>{copy}<br>[Registration Link]</p>
<p>{safe}</p>
<p>{questions}</p>
</div>
"""
DEFAULT_HTML_BODY = EMAIL_LAYOUT.format(**_DEFAULT_SENTENCES)


def default_subject() -> str:
    """The shipped subject in the active language."""
    return gettext(DEFAULT_SUBJECT)


def default_html_body() -> str:
    """The shipped email body in the active language."""
    return EMAIL_LAYOUT.format(**{key: gettext(sentence) for key, sentence in _DEFAULT_SENTENCES.items()})

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
    for snippet in SNIPPET_RE.findall(subject):
        if snippet not in SUBJECT_SNIPPETS:
            errors.setdefault("subject", []).append(
                f"{snippet} cannot be used in the subject; only [Practice Name] can."
            )
    unknown = sorted({s for s in SNIPPET_RE.findall(html_body or "") if s not in SNIPPETS})
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
