"""Bulk runs: Activate Now, the monthly re-invite and a resend run. `runs` plans a run (who is
targeted, the chunks, progress, the resume sweep, the monthly schedule); `chunks` sends one chunk
(create, claim, send by email and text, record, hand on)."""
