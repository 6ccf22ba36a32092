"""What patients read: the invitation email (`invitation_email`: rendering for one patient or a
chunk), the HTML staff write for it (`email_html`: snippets, default wording, sanitiser, checks) and the
invitation text (`invitation_text`: always one message). Saving a practice's wording is
`invitations.services.save_template` (it writes the audit trail)."""
