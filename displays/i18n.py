"""Vietnamese first, English a switch away: the language of a request and the words of the pages.

`?lang=en` (or `vi`) switches and is remembered in a cookie; without either, Vietnamese.
"""
from __future__ import annotations

from starlette.requests import Request

LANGS = ("vi", "en")
COOKIE = "qc_lang"

WORDS: dict[str, tuple[str, str]] = {
    "centre": ("Trung tâm Phục vụ hành chính công thành phố Hà Nội", "Hanoi Public Administrative Service Centre"),
    "branch": ("Chi nhánh", "Branch"),
    "counter": ("Quầy", "Counter"),
    "number": ("Số", "Number"),
    "field": ("Lĩnh vực", "Field"),
    "waiting": ("Đang chờ", "Waiting"),
    "now_serving": ("Đang phục vụ", "Now serving"),
    "expected_wait": ("Thời gian chờ dự kiến", "Expected wait"),
    "numbers_left": ("Số còn lại hôm nay", "Numbers left today"),
    "minutes": ("phút", "min"),
    "disconnected": ("Mất kết nối — đang kết nối lại", "Disconnected — reconnecting"),
    "last_update": ("Cập nhật lần cuối", "Last update"),
    "switch": ("English", "Tiếng Việt"),
}


def lang(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get(COOKIE)
    return chosen if chosen in LANGS else "vi"


def words(language: str, extra: dict[str, tuple[str, str]] | None = None) -> dict[str, str]:
    """The shared words plus a page's own (`extra`), in `language`."""
    i = LANGS.index(language)
    return {k: v[i] for k, v in {**WORDS, **(extra or {})}.items()}
