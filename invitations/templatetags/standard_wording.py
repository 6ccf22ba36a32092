"""{% standard_wording language as standard %}: the shipped wording the template editor's "Put back
the standard wording" button fills in (the practice's own is kept until it presses Save)."""

from django import template

from invitations.models import InvitationTemplate

register = template.Library()


@register.simple_tag
def standard_wording(language: str = "") -> dict[str, str]:
    shipped = InvitationTemplate.default(language) if language else InvitationTemplate.default()
    # An empty text means the standard text (the box shows it greyed as its placeholder).
    return {"subject": shipped.subject, "html_body": shipped.html_body, "text_body": ""}
