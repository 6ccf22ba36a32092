"""Invitations by text message: `delivery` sends one invitation's text at most once and learns from
what Twilio says about it; `replies` acts on patients' replies (STOP, START, HELP); `webhooks` are
Twilio's signed status callbacks and replies. The text's state itself changes only in
`invitations.models.text_transitions`; what a text says is `invitations.wording.invitation_text`."""
