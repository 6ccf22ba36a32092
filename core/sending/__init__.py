"""The one path every email and text message to a provider takes: one engine, a transport per channel.

* `engine`: sending one message (`send_one`) or many inside a deadline (`send_many`) within the
  account's shared rate, retrying throttled and temporary failures in place, handing back what
  was not sent, reporting as it goes; written once for every channel;
* `transports`: the seam (`Item`, `Outcome`, `Transport`) and the channels behind it: `email`
  (Django's email connection, one message per call or the provider's batches; `email_providers`
  says which providers take batches) and `text` (Twilio, or files without a provider; at most once);
* `errors`: what a provider's refusal means (refused for good, throttled, temporary, or the
  account/configuration is wrong), for each provider anymail supports and for Twilio;
* `ratelimit`: the provider account's rate, shared by every worker process (Redis or database);
* `text_segments`: what a text costs (GSM-7 / UCS-2 segments);
* `email_webhooks` / `text_webhooks`: the gates in front of the providers' webhooks.
"""
