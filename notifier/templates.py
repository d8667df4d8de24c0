"""The words of every notification, per trigger and language, rendered byte for byte the same.

Vietnamese with its diacritics is the default; `ascii=True` gives the same Vietnamese folded to plain
letters (đ → d, ộ → o) for SMS gateways that bill or garble Unicode, and the folded texts are written
to fit one GSM-7 SMS (160 characters) with the bundled field and branch names and a tracking link.
The output is NFC, so a name that arrives decomposed still renders to the same bytes.
"""
from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping

from hub.domain.notifications.message import LANGS, TRIGGERS

TEXTS: dict[str, dict[str, str]] = {
    "issued": {
        "vi": "Số {number} ({service}) tại {branch}. Theo dõi: {url}",
        "en": "Number {number} ({service}) at {branch}. Follow: {url}",
    },
    "ahead": {
        "vi": "Số {number}: còn {ahead} người trước bạn tại {branch}.",
        "en": "Number {number}: {ahead} ahead of you at {branch}.",
    },
    "leave": {
        "vi": "Số {number}: hãy rời nhà lúc {leave_at} để kịp lượt, dự kiến được gọi khoảng {call_at}.",
        "en": "Number {number}: leave home by {leave_at}; you should be called around {call_at}.",
    },
    "called": {
        "vi": "Mời công dân có số {number} đến quầy số {counter}.",
        "en": "Number {number}, please come to counter {counter}.",
    },
    "skipped": {
        "vi": "Số {number} đã được gọi nhưng bạn chưa có mặt. Hãy đến quầy trong {minutes} phút để được gọi lại.",
        "en": "Number {number} was called but you were not there. Come to the counter within {minutes} minutes "
              "to be called again.",
    },
    "expired": {
        "vi": "Số {number} đã hết hiệu lực vì chưa được gọi trước giờ đóng cửa. "
              "Mời bạn lấy số mới vào ngày làm việc tiếp theo.",
        "en": "Number {number} has expired: it was not called before closing time. "
              "Please take a new number on the next working day.",
    },
}
# "0 people ahead" reads oddly: a number next in line is told so.
NEXT = {"vi": "Số {number}: sắp đến lượt bạn tại {branch}, hãy có mặt gần quầy.",
        "en": "Number {number}: you are next at {branch}; please stay near the counters."}
TITLES = {"vi": "Số {number}", "en": "Number {number}"}      # the heading of a web push notification

# The fields each trigger needs, read from its Vietnamese text (every language uses the same ones).
FIELDS: dict[str, frozenset[str]] = {
    trigger: frozenset(name for _, name, _, _ in string.Formatter().parse(texts["vi"]) if name)
    for trigger, texts in TEXTS.items()
}

# Characters that Unicode decomposition leaves alone but that a plain-letter SMS cannot carry.
_PLAIN = str.maketrans({"đ": "d", "Đ": "D", "–": "-", "—": "-", "‘": "'", "’": "'", "“": '"', "”": '"'})


def render(trigger: str, params: Mapping[str, object], lang: str = "vi", *, ascii: bool = False) -> str:
    if trigger not in TRIGGERS or lang not in LANGS:
        raise ValueError(f"no text for trigger {trigger!r} in language {lang!r}")
    missing = FIELDS[trigger] - params.keys()
    if missing:
        raise KeyError(f"{trigger}: missing template fields {sorted(missing)}")
    words = NEXT[lang] if trigger == "ahead" and str(params.get("ahead")) == "0" else TEXTS[trigger][lang]
    text = unicodedata.normalize("NFC", words.format_map(params))
    return fold(text) if ascii else text


def title(params: Mapping[str, object], lang: str = "vi") -> str:
    return unicodedata.normalize("NFC", TITLES[lang].format_map(params))


def fold(text: str) -> str:
    """Vietnamese without diacritics: 'Hộ tịch – Đất đai' → 'Ho tich - Dat dai'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    return "".join(c for c in decomposed if not unicodedata.combining(c))
