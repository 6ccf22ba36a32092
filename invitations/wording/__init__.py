"""What patients read: the invitation email (`invitation_email`: rendering for one patient or a
chunk), the HTML staff write for it (`email_html`: snippets, default wording, sanitiser, checks), the
invitation text (`invitation_text`: always one message) and saving a practice's wording (`saving`)."""
