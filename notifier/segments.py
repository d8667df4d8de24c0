"""How many SMS a text costs: GSM-7 when every character is in the GSM 03.38 alphabet, else UCS-2.

A single SMS carries 160 GSM-7 septets or 70 UCS-2 units; a long one is split into parts of 153 or 67,
because each part gives room to a 6-byte concatenation header. A character of the GSM-7 extension
table costs two septets (escape + code), and neither it nor a UTF-16 surrogate pair is split across
parts, so parts are packed character by character rather than by dividing the length.
"""
from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

LIMITS = {"gsm7": (160, 153), "ucs2": (70, 67)}   # encoding → (single message, per part of a long one)


@dataclass(frozen=True)
class Segments:
    encoding: str       # "gsm7" or "ucs2"
    units: int          # septets (gsm7) or UTF-16 code units (ucs2)
    parts: int          # SMS billed


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def count(text: str) -> Segments:
    if is_gsm7(text):
        encoding, costs = "gsm7", [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        encoding, costs = "ucs2", [2 if ord(c) > 0xFFFF else 1 for c in text]
    single, per_part = LIMITS[encoding]
    units = sum(costs)
    return Segments(encoding, units, 1 if units <= single else _packed(costs, per_part))


def _packed(costs: list[int], per_part: int) -> int:
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts
