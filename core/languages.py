"""The languages patients are served in (`settings.LANGUAGES`): their codes, their names, reading a
language as people write it in a spreadsheet, and doing something in a patient's language.

Adding a language is a line in `settings.LANGUAGES` and its catalog (README "Languages"); nothing
here names a language except the few spellings below that a chart export may use for it.
"""

import contextlib
import unicodedata
from typing import Iterator, Optional

from django.conf import settings
from django.utils import translation

DEFAULT_LANGUAGE = "en"

#: Other ways a chart export or a person writes a language than its code or its own name:
#: ISO 639-2/3 codes and English and Spanish names. A language missing here is still read by its
#: code ("fr") and by the name settings give it ("Français").
_OTHER_NAMES = {
    "en": ("eng", "english", "ingles", "en-us", "en-gb"),
    "es": ("spa", "spanish", "espanol", "castellano", "es-us", "es-mx", "es-es"),
}


def codes() -> list[str]:
    """The codes of the patient languages, the default first."""
    return [code for code, _name in settings.LANGUAGES]


def choices() -> list[tuple[str, str]]:
    """(code, name) for staff forms and filters: the English name, and the language's own where it
    differs ("Spanish (Español)"). The patient pages name each language in itself."""
    return [
        (code, english_name(code) if english_name(code) == own else f"{english_name(code)} ({own})")
        for code, own in settings.LANGUAGES
    ]


def name(code: str) -> str:
    """A language's own name ("Español"), or the code itself for one the project does not serve."""
    return dict(settings.LANGUAGES).get(code, code)


def english_name(code: str) -> str:
    """The language's name in English ("Spanish"), for staff pages (which stay English)."""
    info = translation.get_language_info(code) if code else None
    return info["name"] if info else code


def _key(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def read(value: str) -> Optional[str]:
    """A language as written in a file or typed ("es", "spa", "Spanish", "Español", "ES") as its
    code; None when it is not a language the project serves."""
    key = _key(value or "")
    if not key:
        return None
    for code, own_name in settings.LANGUAGES:
        if key in (code, _key(own_name), _key(english_name(code))) or key in _OTHER_NAMES.get(code, ()):
            return code
    return None


def supported(code: Optional[str]) -> Optional[str]:
    """The project's code for a language code from a cookie, a browser or a row ("es-MX" -> "es"),
    or None."""
    if not code:
        return None
    try:
        return translation.get_supported_language_variant(code)
    except LookupError:
        return None


@contextlib.contextmanager
def speaking(code: Optional[str]) -> Iterator[str]:
    """Render what a patient receives in their language (the default one for an unknown code),
    whatever the process's own language is: `with speaking(patient.preferred_language): ...`."""
    language = supported(code) or DEFAULT_LANGUAGE
    with translation.override(language):
        yield language
