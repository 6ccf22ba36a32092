"""The models of invitations, a module each, all importable from `invitations.models`:

| what | module |
|---|---|
| an invitation (one registration link by email, text or both) and one row's transitions | `invitation` |
| the rules as SQL conditions: run out, email still to go, claimable, no channel left | `conditions` |
| batch transitions (a bulk chunk, the expiry sweep, a resend run) | `batch_transitions` |
| the text's state and every change of it | `text_transitions` |
| the timeline (audit trail) of each invitation | `events` |
| a practice's wording of the email and the text | `template` |
| delivery reports from the email service, stored once | `delivery_reports` |
| bulk runs, their chunks and progress ticks | `bulk_runs` |
| the dashboard's stored adoption figures | `figures` |
| replies to texts already acted on (by MessageSid) | `text_replies` |

`batch_sql` holds the two set-based statements the batch transitions use.
"""

from invitations.models.invitation import (  # noqa: F401
    LIVE_TEXT,
    MAX_FAILED_ATTEMPTS,
    OPEN_STATUSES,
    SEND_CLAIM_LEASE,
    SEND_GIVE_UP_AFTER,
    TEXT_TOKEN_BYTES,
    Channel,
    EventKind,
    Invitation,
    InvitationEvent,
    InvitationQuerySet,
    RevokeReason,
    Source,
    Status,
    TextStatus,
    claimable,
    created_detail,
    email_unsent,
    hash_token,
    new_token,
    no_channel_left,
    run_out,
)
from invitations.models.template import InvitationTemplate  # noqa: F401
from invitations.models.delivery_reports import DeliveryReport  # noqa: F401
from invitations.models.bulk_runs import BulkRun, BulkRunChunk, BulkRunTick  # noqa: F401
from invitations.models.figures import PracticeFigures  # noqa: F401
from invitations.models.text_replies import HandledReply  # noqa: F401
