"""Notifier: the senders of SMS (eSMS, Twilio), web push, Zalo ZNS and the log, the texts they send,
the gateways' delivery reports, and fake gateways for the tests and the demo. The outbox, the rules
and the worker that drive them arrive in a later issue."""
