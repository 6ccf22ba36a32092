"""Translation catalogs without GNU gettext: read a .po file and write the .mo Django loads.

The compiled catalogs (locale/<language>/LC_MESSAGES/django.mo) are committed, so `bin/run` and the
tests need nothing but Python; `manage.py compile_catalogs` writes them from the .po files and a test
checks that every committed .mo is what its .po compiles to, and that no entry is untranslated or
fuzzy. The .mo layout is GNU gettext's (what Python's `gettext` module reads): a header, the sorted
original strings, their translations, no hash table.
"""

import ast
import struct
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str = ""
    msgctxt: "str | None" = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def is_header(self) -> bool:
        return self.msgid == "" and self.msgctxt is None

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr.values())

    @property
    def key(self) -> str:
        original = self.msgid + ("\0" + self.msgid_plural if self.msgid_plural else "")
        return original if self.msgctxt is None else f"{self.msgctxt}\x04{original}"

    @property
    def value(self) -> str:
        return "\0".join(self.msgstr[index] for index in sorted(self.msgstr))


def parse(text: str) -> list[Entry]:
    """The entries of a .po file (obsolete `#~` entries left out)."""
    entries: list[Entry] = []
    entry, target = Entry(), None

    def finish():
        nonlocal entry, target
        if target is not None:
            entries.append(entry)
        entry, target = Entry(), None

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            if not line:
                finish()
            continue
        if line.startswith("#,"):
            if target is not None and target[0] != "msgctxt":
                finish()
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            value = ast.literal_eval(line)
        else:
            if keyword in ("msgctxt", "msgid") and target is not None and target[0] not in ("msgctxt",):
                finish()
            value = ast.literal_eval(rest)
            if keyword.startswith("msgstr["):
                target = ("msgstr", int(keyword[7:-1]))
            elif keyword == "msgstr":
                target = ("msgstr", 0)
            else:
                target = (keyword, None)
            if not entry.line:
                entry.line = number
        name, index = target
        if name == "msgstr":
            entry.msgstr[index] = entry.msgstr.get(index, "") + value
        elif name == "msgctxt":
            entry.msgctxt = (entry.msgctxt or "") + value
        else:
            setattr(entry, name, getattr(entry, name) + value)
    finish()
    return entries


def compile_po(text: str) -> bytes:
    """The .mo bytes of a .po file's translated, non-fuzzy entries (and its header)."""
    pairs = sorted(
        (entry.key.encode(), entry.value.encode())
        for entry in parse(text)
        if entry.is_header or (entry.translated and not entry.fuzzy)
    )
    count = len(pairs)
    originals_at = 7 * 4
    translations_at = originals_at + count * 8
    data_at = translations_at + count * 8
    originals, translations, blob = [], [], b""
    for key, _ in pairs:
        originals.append((len(key), data_at + len(blob)))
        blob += key + b"\0"
    for _, value in pairs:
        translations.append((len(value), data_at + len(blob)))
        blob += value + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, count, originals_at, translations_at, 0, data_at)
    tables = b"".join(struct.pack("<2I", *pair) for pair in originals + translations)
    return header + tables + blob


def catalogs() -> list[Path]:
    """Every .po file of the project's catalogs."""
    return sorted(path for folder in settings.LOCALE_PATHS for path in Path(folder).glob("*/LC_MESSAGES/*.po"))


def compile_all() -> list[Path]:
    """Write each catalog's .mo beside its .po; returns the .mo files that changed."""
    changed = []
    for po in catalogs():
        mo = po.with_suffix(".mo")
        compiled = compile_po(po.read_text(encoding="utf-8"))
        if not mo.exists() or mo.read_bytes() != compiled:
            mo.write_bytes(compiled)
            changed.append(mo)
    return changed
