"""Notification texts: byte-stable, Vietnamese with diacritics or folded to plain letters, English;
and what they cost in SMS (GSM-7 vs UCS-2 segments)."""
from __future__ import annotations

import unicodedata

import pytest

from hub.auth import Tokens
from hub.config import load_config
from hub.domain.notifications.message import LANGS, TRIGGERS
from notifier import segments, templates

from conftest import SECRET

PARAMS = {"number": "2001", "service": "Hộ tịch", "branch": "Chi nhánh số 1", "ahead": 5, "leave_at": "09:40",
          "call_at": "10:05", "counter": "5", "minutes": 15, "url": "http://127.0.0.1:8000/t/abc"}


# -- byte-stable texts ------------------------------------------------------------------------------

def test_called_in_vietnamese_is_these_exact_bytes():
    text = templates.render("called", PARAMS)
    assert text.encode() == (b"M\xe1\xbb\x9di c\xc3\xb4ng d\xc3\xa2n c\xc3\xb3 s\xe1\xbb\x91 2001 "
                             b"\xc4\x91\xe1\xba\xbfn qu\xe1\xba\xa7y s\xe1\xbb\x91 5.")
    assert text == "Mời công dân có số 2001 đến quầy số 5."


def test_nobody_ahead_is_told_it_is_next_not_zero_people():
    params = {"number": "2001", "branch": "Chi nhánh số 2", "ahead": 0}
    assert templates.render("ahead", params) == "Số 2001: sắp đến lượt bạn tại Chi nhánh số 2, hãy có mặt gần quầy."
    assert templates.render("ahead", {**params, "ahead": 1}) == "Số 2001: còn 1 người trước bạn tại Chi nhánh số 2."
    assert "0 ahead" not in templates.render("ahead", params, "en")


def test_folded_texts_are_these_exact_bytes():
    assert templates.render("called", PARAMS, ascii=True).encode() == b"Moi cong dan co so 2001 den quay so 5."
    assert templates.render("issued", PARAMS, ascii=True).encode() == (
        b"So 2001 (Ho tich) tai Chi nhanh so 1. Theo doi: http://127.0.0.1:8000/t/abc")
    assert templates.render("skipped", PARAMS, ascii=True).encode() == (
        b"So 2001 da duoc goi nhung ban chua co mat. Hay den quay trong 15 phut de duoc goi lai.")


def test_every_trigger_in_every_language():
    expected = {
        ("issued", "vi"): "Số 2001 (Hộ tịch) tại Chi nhánh số 1. Theo dõi: http://127.0.0.1:8000/t/abc",
        ("issued", "en"): "Number 2001 (Hộ tịch) at Chi nhánh số 1. Follow: http://127.0.0.1:8000/t/abc",
        ("ahead", "vi"): "Số 2001: còn 5 người trước bạn tại Chi nhánh số 1.",
        ("ahead", "en"): "Number 2001: 5 ahead of you at Chi nhánh số 1.",
        ("leave", "vi"): "Số 2001: hãy rời nhà lúc 09:40 để kịp lượt, dự kiến được gọi khoảng 10:05.",
        ("leave", "en"): "Number 2001: leave home by 09:40; you should be called around 10:05.",
        ("called", "en"): "Number 2001, please come to counter 5.",
        ("skipped", "vi"): "Số 2001 đã được gọi nhưng bạn chưa có mặt. Hãy đến quầy trong 15 phút để được gọi lại.",
        ("expired", "vi"): "Số 2001 đã hết hiệu lực vì chưa được gọi trước giờ đóng cửa. "
                           "Mời bạn lấy số mới vào ngày làm việc tiếp theo.",
        ("expired", "en"): "Number 2001 has expired: it was not called before closing time. "
                           "Please take a new number on the next working day.",
    }
    for (trigger, lang), text in expected.items():
        assert templates.render(trigger, PARAMS, lang) == text
    for trigger in TRIGGERS:
        for lang in LANGS:
            assert templates.render(trigger, PARAMS, lang) == templates.render(trigger, dict(PARAMS), lang)


def test_decomposed_names_render_to_the_same_bytes():
    nfd = {**PARAMS, "service": unicodedata.normalize("NFD", "Hộ tịch"),
           "branch": unicodedata.normalize("NFD", "Chi nhánh số 1")}
    assert templates.render("issued", nfd).encode() == templates.render("issued", PARAMS).encode()


def test_push_title():
    assert templates.title(PARAMS) == "Số 2001" and templates.title(PARAMS, "en") == "Number 2001"


def test_a_missing_field_or_an_unknown_trigger_is_a_bug_that_says_so():
    with pytest.raises(KeyError, match="counter"):
        templates.render("called", {"number": "2001"})
    with pytest.raises(ValueError):
        templates.render("thanks", PARAMS)
    with pytest.raises(ValueError):
        templates.render("called", PARAMS, "fr")


# -- folding ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, folded", [
    ("Đất đai", "Dat dai"), ("Văn hóa – Thể thao – Du lịch", "Van hoa - The thao - Du lich"),
    ("ĐĂNG KÝ KINH DOANH", "DANG KY KINH DOANH"), ("Tư pháp – Chứng thực", "Tu phap - Chung thuc"),
    ("Nông nghiệp – Môi trường", "Nong nghiep - Moi truong"), ("quầy số 5", "quay so 5"),
    ("“Mời” ‘anh’…", "\"Moi\" 'anh'..."),
])
def test_fold_drops_diacritics_and_keeps_the_letters(text, folded):
    assert templates.fold(text) == folded


def test_every_bundled_name_folds_to_gsm7():
    centre = load_config()
    names = [s.name for b in centre.branches.values() for s in b.services.values()]
    names += [b.name for b in centre.branches.values()]
    assert names
    for name in names:
        assert segments.is_gsm7(templates.fold(name)), name


# -- SMS segments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, encoding, units, parts", [
    ("", "gsm7", 0, 1),
    ("a" * 160, "gsm7", 160, 1), ("a" * 161, "gsm7", 161, 2), ("a" * 306, "gsm7", 306, 2), ("a" * 307, "gsm7", 307, 3),
    ("{" * 80, "gsm7", 160, 1), ("{" * 81, "gsm7", 162, 2),          # an extension character costs two septets
    ("€" * 76 + "a", "gsm7", 153, 1),
    ("ạ" * 70, "ucs2", 70, 1), ("ạ" * 71, "ucs2", 71, 2), ("ạ" * 134, "ucs2", 134, 2), ("ạ" * 135, "ucs2", 135, 3),
    ("a" * 159 + "ạ", "ucs2", 160, 3),                                # one Vietnamese letter makes it all UCS-2
    ("😀" * 35, "ucs2", 70, 1), ("😀" * 36, "ucs2", 72, 2),          # outside the BMP: a surrogate pair each
])
def test_segment_count(text, encoding, units, parts):
    assert segments.count(text) == segments.Segments(encoding, units, parts)


def test_an_escape_pair_or_a_surrogate_pair_is_never_split_across_parts():
    # 306 septets would fit 2 parts of 153 by arithmetic, but the '{' cannot straddle parts 1 and 2.
    assert segments.count("a" * 152 + "{" + "a" * 152).parts == 3
    assert segments.count("a" * 66 + "😀" + "a" * 66).parts == 3


def test_folded_texts_fit_one_sms_with_the_longest_bundled_names_and_a_real_tracking_link():
    """The plain-letter texts are written for one GSM-7 SMS: checked with the longest field and branch
    names of the bundled configuration, a real ticket token, and a public URL longer than the default."""
    centre = load_config()
    services = [s for b in centre.branches.values() for s in b.services.values()]
    branches = list(centre.branches.values())
    url = "https://hanhchinhcong.hanoi.gov.vn/t/" + Tokens(SECRET).ticket("12", "20260519-9999")
    for lang, name in (("vi", "name"), ("en", "name_en")):
        longest = {**PARAMS, "number": "9999", "ahead": 50, "minutes": 120, "counter": "12", "url": url,
                   "service": max((getattr(s, name) for s in services), key=len),
                   "branch": max((getattr(b, name) for b in branches), key=len)}
        for trigger in TRIGGERS:
            text = templates.render(trigger, longest, lang, ascii=True)
            cost = segments.count(text)
            assert (cost.encoding, cost.parts) == ("gsm7", 1), (trigger, lang, len(text), text)


def test_vietnamese_with_diacritics_is_ucs2():
    cost = segments.count(templates.render("skipped", PARAMS))
    assert cost.encoding == "ucs2" and cost.parts == 2        # what QUEUECAST_SMS_UNICODE=on costs
    assert segments.count(templates.render("called", PARAMS)) == segments.Segments("ucs2", 38, 1)
