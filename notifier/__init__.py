"""The notifier: the worker that sends what the outbox owes (`worker`), one sender per gateway
(`senders/`: eSMS, Twilio, web push, Zalo ZNS, the log), the texts they send (`templates`), the
gateways' delivery reports (`reports`, `hooks`), the browser's VAPID key (`push_key`), and fake
gateways for the tests and the demo (`fakes/`). What is owed, and when, is decided by the domain
(hub.domain.notifications); this package only delivers it, and imports the hub, never the reverse."""
