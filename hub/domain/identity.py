"""Citizen identity numbers (CCCD), and what a log or a screen may show of a holder: masked phones,
recipients and texts. (Phone numbers are read in hub.phones.)"""
from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from hub.domain.errors import invalid

# 4th digit of a CCCD: sex and century of birth (even = male, odd = female), per Circular 07/2016/TT-BCA:
# 0/1 the 20th century, 2/3 the 21st, 4/5 the 22nd, 6/7 the 23rd, 8/9 the 24th. Nobody alive was born
# in the 1800s under this scheme: a code read so would make anyone 200 years old, and a priority case.
_CENTURY = {"0": 1900, "1": 1900, "2": 2000, "3": 2000, "4": 2100, "5": 2100, "6": 2200, "7": 2200,
            "8": 2300, "9": 2300}


def validate_cccd(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{12}", value):
        raise invalid("invalid_citizen_id", "A citizen id (CCCD) is exactly 12 digits.",
                      "Số định danh cá nhân (CCCD) gồm đúng 12 chữ số.")
    return value


def birth_year(cccd: str) -> int:
    return _CENTURY[cccd[3]] + int(cccd[4:6])


def check_born(cccd: str, year: int) -> int:
    """The birth year of a citizen who exists in `year`: a CCCD saying they are born later is
    refused (it cannot be genuine), so it can neither take a number nor claim an age."""
    born = birth_year(cccd)
    if born > year:
        raise invalid("invalid_citizen_id", f"This citizen id (CCCD) gives a birth year, {born}, still to come.",
                      f"Số định danh cá nhân (CCCD) có năm sinh {born} chưa tới.")
    return born


def mask_phone(phone: str | None) -> str | None:
    """For logs: '+84912345678' → '+8491*****78'."""
    if not phone:
        return phone
    return phone[:5] + "*" * max(len(phone) - 7, 0) + phone[-2:]


_PHONE_LIKE = re.compile(r"\+?\d[\d ]{7,16}\d")
# A tracking link's token: `<ticket id, base64>.<signature>`. The signature makes it the holder's key.
_TOKEN_IN_LINK = re.compile(r"(/t/[A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+")


def mask_recipient(recipient: str | Mapping[str, object] | None) -> str:
    """Who a message is for, fit for a log or a screen: a masked phone, or a push service's host."""
    if isinstance(recipient, str):
        return mask_phone(recipient) or ""
    endpoint = recipient.get("endpoint") if isinstance(recipient, Mapping) else None
    host = urlsplit(endpoint).hostname if isinstance(endpoint, str) else None
    return f"push · {host}" if host else "push"


def mask_text(text: str | None) -> str:
    """Free text (a message, a gateway's words) fit for a log: phone numbers masked, and the
    signature of any tracking link cut off (the link is the holder's key to their number)."""
    text = _PHONE_LIKE.sub(lambda m: mask_phone(m.group().replace(" ", "")) or "", text or "")
    return _TOKEN_IN_LINK.sub(r"\1.…", text)
