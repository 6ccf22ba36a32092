"""The staff pages of invitations, one module per page family (Django's admin autodiscovery imports
this package, which registers each):

| page | module |
|---|---|
| the invitations list, an invitation's timeline, delivery reports from the email service | `invitations` |
| the patient list's status column, filters and Invite / Resend / Revoke with their confirmations | `patient_list` |
| a patient's page: the invitation box, its buttons, "Why no invite?" | `patient_page` |
| "Send portal invitation" on the add-patient form, with the choice of channel | `patient_add` |
| the patient admin that puts those together (registered in place of `patients.admin.patients.PatientAdmin`) | `patients` |
| the portal access dashboard per practice (figures, switches, channels) | `dashboard` |
| Activate Now: preview, confirmation, progress bar | `activate_now` |
| the bulk runs list (and the URLs of the three above) | `bulk_runs` |
| the invitation email and text editor, and the templates list | `template_editor` |
| representatives on a patient's page (add, invite, resend, revoke) and the representatives lists | `representatives` |
| who may run Activate Now, edit the wording and switch the portal settings | `permissions` |
"""

from invitations.admin import bulk_runs, invitations, patients, representatives, template_editor  # noqa: F401
