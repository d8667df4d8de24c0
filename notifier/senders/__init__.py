"""The senders, one file per gateway: eSMS and Twilio (SMS), web push, Zalo ZNS, and the log. Each
implements `protocol.Sender`; `notifier.channels` builds the ones a process has settings for."""
