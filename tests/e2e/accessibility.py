"""axe-core in the browser tests: inject the vendored axe (tests/e2e/vendor/, nothing downloaded)
into the page and list what breaks WCAG 2.1 A and AA."""

import functools
import hashlib
from pathlib import Path

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
WCAG21_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
}"""


@functools.cache
def axe_source() -> str:
    source = AXE.read_bytes()
    assert hashlib.sha256(source).hexdigest() == AXE_SHA256, f"{AXE} is not axe-core {AXE_VERSION} as vendored"
    return source.decode("utf-8")


def violations(page) -> list[str]:
    """WCAG 2.1 A/AA violations on the page as it is now. axe is evaluated through the DevTools
    protocol, which the page's Content-Security-Policy does not govern (the page's own scripts are
    still held to it)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    return page.evaluate(_RUN, WCAG21_A_AA)
