"""Saving a practice's invitation wording (the email and the text): the one workflow for the editor
page and the template admin, which records itself in the audit trail (what changed, never the
wording)."""

from patients import audit
from patients.audit import AuditAction

from invitations.models import InvitationTemplate


def save_template(template: InvitationTemplate, *, actor, changed: list[str], logo=None, remove_logo: bool = False) -> list[str]:
    """Save the template (the model sanitises the email and puts the text on one line) and the
    practice's logo; one audit entry names what changed (`changed`: the labels of the changed
    fields, e.g. "subject", "invitation text"; plus the logo here). Returns them."""
    template.updated_by = actor
    template.save()
    practice = template.practice
    changed = list(changed)
    if logo:
        practice.logo.save(logo.name, logo, save=True)
        changed.append("logo")
    elif remove_logo and practice.logo:
        practice.logo.delete(save=True)
        changed.append("logo (removed)")
    if changed:
        audit.record(
            practice_id=practice.pk, actor=actor, action=AuditAction.TEMPLATE_EDIT,
            summary=f"Changed the invitation template's {', '.join(changed)}",
        )
    return changed
