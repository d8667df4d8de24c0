"""The sender of the demo and of a hub without a gateway: one JSON log line per message."""
from __future__ import annotations

import logging

from hub.domain.identity import mask_phone
from notifier import templates
from notifier.message import Message, Result

log = logging.getLogger("queuecast.notifier")


class LogSender:
    idempotent = True        # nothing leaves the process

    async def send(self, msg: Message) -> Result:
        to = mask_phone(msg.recipient) if isinstance(msg.recipient, str) else "push subscription"
        log.info("notification", extra={"fields": {
            "key": msg.key, "to": to, "lang": msg.lang,
            "text": templates.render(msg.trigger, msg.params, msg.lang)}})
        return Result.sent(msg.key)
