"""The staff pages of invitations, one module per page family (Django's admin autodiscovery imports
this package, which registers each):

| page | module |
|---|---|
| the invitations list and an invitation's timeline | `invitations` |
| delivery reports from the email service | `delivery_reports` |
| the patient list's status column, filters and Invite / Resend / Revoke with their confirmations | `patient_list` |
| a patient's page: the invitation box, its buttons, "Why no invite?" | `patient_page` |
| "Send portal invitation" on the add-patient form, with the choice of channel | `patient_add` |
| the patient admin that puts those together (registered in place of `patients.admin.PatientAdmin`) | `patients` |
| the portal access dashboard per practice (figures, switches, channels) | `dashboard` |
| Activate Now: preview, confirmation, progress bar | `activate_now` |
| the bulk runs list (and the URLs of the three above) | `bulk_runs` |
| the invitation email and text editor, and the templates list | `template_editor` |
"""

from invitations.admin import bulk_runs, delivery_reports, invitations, patients, template_editor  # noqa: F401
