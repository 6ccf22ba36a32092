"""The staff pages of the ground layer, one module per page family (Django's admin autodiscovery
imports this package, which registers each):

| page | module |
|---|---|
| practices and their team members | `practices` |
| patients: the list, a patient's page, the CSV import (`imports`) | `patients` |
| the email and text opt-out lists | `opt_outs` |
| the audit trail | `audit` |
| system status (scheduled jobs, workers) | `system_status` |

`scoping` is what every admin of every app is built on (tenant scoping, hostile values); `paging`
counts big lists only so far.
"""

from patients.admin import audit, opt_outs, patients, practices, system_status  # noqa: F401
