"""The one path every email and text message to a provider takes.

* `errors`: what a provider's refusal means (refused for good, throttled, temporary, or the
  account/configuration is wrong), for each provider anymail supports and for Twilio;
* `ratelimit`: the provider account's rate, shared by every worker process (Redis or database);
* `providers`: which email providers take batches with per-recipient data, and how to write the fields;
* `outbox`: sending one email, or many at once through a bounded pool or batch calls, inside a
  deadline, retrying throttled and temporary failures in place;
* `sms`: the same for text messages (Twilio, or files by default), at most once per text;
* `webhooks` / `sms_webhooks`: the gates in front of the providers' webhooks.
"""
