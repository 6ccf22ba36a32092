"""Who may do what with a practice's portal (on top of the role's model permissions, which the
admin checks per practice through `patients.tenancy`)."""

from patients import tenancy


def can_manage_portal(user, practice_id: int) -> bool:
    """Activate Now and the invitation email's wording: the practice's admins and managers."""
    return tenancy.can(user, "invitations.add_bulkrun", practice_id) and tenancy.manages(user, practice_id)


def can_change_switches(user, practice_id: int) -> bool:
    """The portal's switches (invitations on, link lifetime, monthly re-invite): practice admins."""
    return tenancy.can(user, "patients.change_practice", practice_id)
