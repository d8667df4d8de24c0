"""Vietnamese announcements, Northern usage (Hà Nội): how the lobby reads a call out loud.

Pure: numbers in, words out. `read(1023)` → "một nghìn không trăm hai mươi ba".

The usual rules of reading a number:
- 0 alone is "không"; 10–19 are "mười …"; tens ≥ 20 are "… mươi".
- after a tens, 1 is "mốt" (21 hai mươi mốt; but 11 mười một, 101 một trăm linh một),
  5 is "lăm" (15 mười lăm, 25 hai mươi lăm; but 105 một trăm linh năm),
  4 is "tư" after a tens ≥ 20 (24 hai mươi tư; but 14 mười bốn, 104 một trăm linh bốn).
- a zero tens before a non-zero unit is "linh" (105 một trăm linh năm).
- zero hundreds inside a thousand are read: "không trăm" (1023 một nghìn không trăm hai mươi ba,
  1005 một nghìn không trăm linh năm); a round 1000 is just "một nghìn".
- thousands are "nghìn" (Northern), never "ngàn".

Ticket numbers are read as whole numbers (1023 is one thousand and twenty-three, not 1-0-2-3).

`clips()` gives the same reading as names of pre-rendered audio clips (static/audio/vi/NAME.ogg),
for browsers without a Vietnamese voice. Clip names are ASCII; the two pairs of words that differ
only by their tone are told apart: "mot" một / "mot-sac" mốt, "muoi" mươi / "muoi-huyen" mười.
"""
from __future__ import annotations

import re

MAX = 9999

DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")

INVITE = "Mời công dân có số"
TO_COUNTER = "đến quầy số"
INVITE_EN = "Number {number}, please go to counter {counter}"

# Every word (or short phrase) that can be spoken, and the name of its clip.
CLIP_NAMES: dict[str, str] = {
    INVITE: "moi-cong-dan-co-so",
    TO_COUNTER: "den-quay-so",
    "không": "khong", "một": "mot", "hai": "hai", "ba": "ba", "bốn": "bon", "năm": "nam",
    "sáu": "sau", "bảy": "bay", "tám": "tam", "chín": "chin",
    "mốt": "mot-sac", "tư": "tu", "lăm": "lam",
    "mười": "muoi-huyen", "mươi": "muoi", "linh": "linh", "trăm": "tram", "nghìn": "nghin",
}
CLIPS: tuple[str, ...] = tuple(dict.fromkeys(CLIP_NAMES.values()))

_WHOLE = re.compile(r"[0-9]{1,4}")


def _tens_units(n: int, *, after_hundreds: bool) -> list[str]:
    """Words of 0 ≤ n ≤ 99; `after_hundreds` when a hundreds word stands before it (→ "linh")."""
    tens, units = divmod(n, 10)
    if tens == 0:
        if units == 0:
            return []
        return (["linh"] if after_hundreds else []) + [DIGITS[units]]
    words = ["mười"] if tens == 1 else [DIGITS[tens], "mươi"]
    if units == 0:
        return words
    if units == 1 and tens >= 2:
        return words + ["mốt"]
    if units == 4 and tens >= 2:
        return words + ["tư"]
    if units == 5:
        return words + ["lăm"]
    return words + [DIGITS[units]]


def words(n: int) -> list[str]:
    """The reading of 0 ≤ n ≤ 9999, one word per item."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX:
        raise ValueError(f"a whole number from 0 to {MAX}, got {n!r}")
    if n == 0:
        return ["không"]
    thousands, rest = divmod(n, 1000)
    hundreds, tu = divmod(rest, 100)
    out: list[str] = []
    if thousands:
        out += [DIGITS[thousands], "nghìn"]
    if hundreds or (thousands and tu):            # 1023: "không trăm" keeps the place
        out += [DIGITS[hundreds], "trăm"]
    out += _tens_units(tu, after_hundreds=bool(out))
    return out


def read(n: int) -> str:
    """`read(105)` → "một trăm linh năm"."""
    return " ".join(words(n))


def parse(value: str | int, what: str = "number") -> int:
    """A ticket or counter number as given ("1023", 5) → int, or ValueError naming `what`."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number from 0 to {MAX}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        n = int(value.strip())
    else:
        raise ValueError(f"{what} must be a whole number from 0 to {MAX}, got {value!r}")
    if not 0 <= n <= MAX:
        raise ValueError(f"{what} must be a whole number from 0 to {MAX}, got {value!r}")
    return n


def announcement(number: str | int, counter: str | int) -> str:
    """"Mời công dân có số một nghìn không trăm hai mươi ba đến quầy số năm" — what is spoken."""
    return f"{INVITE} {read(parse(number))} {TO_COUNTER} {read(parse(counter, 'counter'))}"


def subtitle(number: str | int, counter: str | int) -> str:
    """"Mời công dân có số 1023 đến quầy số 5" — the same sentence in digits, for the screen."""
    n, c = parse(number), parse(counter, "counter")
    shown = number.strip() if isinstance(number, str) else str(n)
    return f"{INVITE} {shown} {TO_COUNTER} {c}"


def subtitle_en(number: str | int, counter: str | int) -> str:
    n, c = parse(number), parse(counter, "counter")
    shown = number.strip() if isinstance(number, str) else str(n)
    return INVITE_EN.format(number=shown, counter=c)


def clips(number: str | int, counter: str | int) -> list[str]:
    """The announcement as clip names, in the order to play them."""
    return ([CLIP_NAMES[INVITE]] + [CLIP_NAMES[w] for w in words(parse(number))]
            + [CLIP_NAMES[TO_COUNTER]] + [CLIP_NAMES[w] for w in words(parse(counter, "counter"))])
