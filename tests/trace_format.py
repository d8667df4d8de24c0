"""The trace format (docs/trace.md) written out by hand, independently of hub.domain.events, so
that tests check the code against the format and not against itself."""

# Every line has t, type, branch, and per type exactly these fields.
TRACE_FIELDS = {
    "counter.opened": {"counter", "services"},
    "counter.closed": {"counter"},
    "ticket.issued": {"ticket", "service", "channel", "priority"},
    "ticket.checked_in": {"ticket"},
    "ticket.called": {"ticket", "counter"},
    "ticket.recalled": {"ticket", "counter"},
    "ticket.completed": {"ticket", "counter"},
    "ticket.skipped": {"ticket", "counter"},
    "ticket.cancelled": {"ticket"},
    "ticket.transferred": {"ticket", "service"},
    "ticket.expired": {"ticket"},
}
