"""Notifier: outbox, rules and senders for SMS, web push and Zalo. Built in a later issue."""
