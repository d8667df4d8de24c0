"""Notifications in the domain: what a number's life makes owed to its holder (`rules`), and the
message a sender is handed (`message`). Pure, like the rest of the domain: the hub writes what is
owed into the outbox with the events that caused it, and the notifier (its own package, above the
hub) only sends."""
