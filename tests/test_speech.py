"""Vietnamese reading of queue and counter numbers (Northern usage), the announcement, its clips."""
from __future__ import annotations

from pathlib import Path

import pytest

from displays import speech
from displays.announce import CHIME_URL, CLIP_URL

STATIC = Path(__file__).resolve().parents[1] / "static"

READINGS = {
    0: "không", 1: "một", 2: "hai", 3: "ba", 4: "bốn", 5: "năm", 6: "sáu", 7: "bảy", 8: "tám", 9: "chín",
    10: "mười", 11: "mười một", 12: "mười hai", 14: "mười bốn", 15: "mười lăm", 19: "mười chín",
    20: "hai mươi", 21: "hai mươi mốt", 22: "hai mươi hai", 24: "hai mươi tư", 25: "hai mươi lăm",
    30: "ba mươi", 31: "ba mươi mốt", 34: "ba mươi tư", 35: "ba mươi lăm", 40: "bốn mươi", 44: "bốn mươi tư",
    45: "bốn mươi lăm", 50: "năm mươi", 51: "năm mươi mốt", 55: "năm mươi lăm", 99: "chín mươi chín",
    100: "một trăm", 101: "một trăm linh một", 104: "một trăm linh bốn", 105: "một trăm linh năm",
    109: "một trăm linh chín", 110: "một trăm mười", 111: "một trăm mười một", 114: "một trăm mười bốn",
    115: "một trăm mười lăm", 120: "một trăm hai mươi", 121: "một trăm hai mươi mốt",
    124: "một trăm hai mươi tư", 125: "một trăm hai mươi lăm", 200: "hai trăm", 305: "ba trăm linh năm",
    555: "năm trăm năm mươi lăm", 999: "chín trăm chín mươi chín",
    1000: "một nghìn", 1001: "một nghìn không trăm linh một", 1004: "một nghìn không trăm linh bốn",
    1005: "một nghìn không trăm linh năm", 1010: "một nghìn không trăm mười",
    1011: "một nghìn không trăm mười một", 1014: "một nghìn không trăm mười bốn",
    1015: "một nghìn không trăm mười lăm", 1020: "một nghìn không trăm hai mươi",
    1021: "một nghìn không trăm hai mươi mốt", 1023: "một nghìn không trăm hai mươi ba",
    1100: "một nghìn một trăm", 1101: "một nghìn một trăm linh một", 1105: "một nghìn một trăm linh năm",
    1110: "một nghìn một trăm mười", 1234: "một nghìn hai trăm ba mươi tư", 2000: "hai nghìn",
    2001: "hai nghìn không trăm linh một", 2024: "hai nghìn không trăm hai mươi tư",
    2100: "hai nghìn một trăm", 4501: "bốn nghìn năm trăm linh một", 5555: "năm nghìn năm trăm năm mươi lăm",
    6501: "sáu nghìn năm trăm linh một", 7015: "bảy nghìn không trăm mười lăm", 8000: "tám nghìn",
    9001: "chín nghìn không trăm linh một", 9999: "chín nghìn chín trăm chín mươi chín",
}


@pytest.mark.parametrize("n, expected", sorted(READINGS.items()))
def test_reading_table(n, expected):
    assert speech.read(n) == expected


# -- the rules, checked on every number from 0 to 9999 ---------------------------------------------------

def _unit_words(n: int) -> tuple[list[str], str]:
    """The words of n and what its last two digits read as (the words after the last 'trăm')."""
    w = speech.words(n)
    if "trăm" in w:
        return w, " ".join(w[len(w) - w[::-1].index("trăm"):])
    if "nghìn" in w:
        return w, ""
    return w, " ".join(w)


def _expected_tail(tu: int, after_hundreds: bool) -> str:
    """The reading of the last two digits by the rules, written independently of the module."""
    tens, units = divmod(tu, 10)
    unit = ["", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]
    if tens == 0:
        return ("linh " if after_hundreds and units else "") + unit[units] if units else ""
    head = "mười" if tens == 1 else f"{unit[tens]} mươi"
    if units == 0:
        return head
    if units == 1:
        return f"{head} {'một' if tens == 1 else 'mốt'}"
    if units == 4:
        return f"{head} {'bốn' if tens == 1 else 'tư'}"
    if units == 5:
        return f"{head} lăm"
    return f"{head} {unit[units]}"


def test_every_number_follows_the_rules():
    for n in range(0, 10000):
        w = speech.words(n)
        text = " ".join(w)
        assert "ngàn" not in text and "  " not in text and all(w), n
        thousands, hundreds, tu = n // 1000, n // 100 % 10, n % 100
        # Thousands: "X nghìn" first; then the hundreds are always read inside a thousand unless
        # nothing follows ("một nghìn", "hai nghìn một trăm").
        if thousands:
            assert w[:2] == [speech.DIGITS[thousands], "nghìn"], n
            rest = w[2:]
            if hundreds == 0 and tu == 0:
                assert rest == [], n
            else:
                assert rest[:2] == [speech.DIGITS[hundreds], "trăm"], n
                assert " ".join(rest[2:]) == _expected_tail(tu, True), n
        elif hundreds:
            assert w[:2] == [speech.DIGITS[hundreds], "trăm"], n
            assert " ".join(w[2:]) == _expected_tail(tu, True), n
        elif n:
            assert text == _expected_tail(tu, False), n
        else:
            assert text == "không"
        # No tone word out of place anywhere.
        assert "mốt" not in w or w[w.index("mốt") - 1] == "mươi", n
        assert "tư" not in w or w[w.index("tư") - 1] == "mươi", n
        assert "lăm" not in w or w[w.index("lăm") - 1] in ("mươi", "mười"), n
        assert "linh" not in w or w[w.index("linh") - 1] == "trăm", n


@pytest.mark.parametrize("bad", [-1, 10000, 1.5, True, "12"])
def test_out_of_range_is_refused(bad):
    with pytest.raises(ValueError):
        speech.words(bad)


COUNTERS = {1: "một", 2: "hai", 3: "ba", 4: "bốn", 5: "năm", 6: "sáu", 7: "bảy", 8: "tám", 9: "chín",
            10: "mười", 11: "mười một", 12: "mười hai", 13: "mười ba", 14: "mười bốn", 15: "mười lăm",
            16: "mười sáu", 17: "mười bảy", 18: "mười tám", 19: "mười chín", 20: "hai mươi",
            21: "hai mươi mốt", 22: "hai mươi hai", 23: "hai mươi ba", 24: "hai mươi tư", 25: "hai mươi lăm",
            26: "hai mươi sáu", 27: "hai mươi bảy", 28: "hai mươi tám", 29: "hai mươi chín", 30: "ba mươi"}


@pytest.mark.parametrize("counter, reading", sorted(COUNTERS.items()))
def test_counter_numbers(counter, reading):
    assert speech.announcement("1001", str(counter)).endswith(f"đến quầy số {reading}")


# -- the announcement ---------------------------------------------------------------------------------

def test_announcement_text_and_subtitle():
    assert speech.announcement("1023", "5") == "Mời công dân có số một nghìn không trăm hai mươi ba đến quầy số năm"
    assert speech.subtitle("1023", "5") == "Mời công dân có số 1023 đến quầy số 5"
    assert speech.announcement(2024, 14) == "Mời công dân có số hai nghìn không trăm hai mươi tư đến quầy số mười bốn"
    assert speech.subtitle_en("1023", "5") == "Number 1023, please go to counter 5"


def test_clips_name_each_word_in_order():
    assert speech.clips("1023", "5") == ["moi-cong-dan-co-so", "mot", "nghin", "khong", "tram", "hai", "muoi", "ba",
                                         "den-quay-so", "nam"]
    # Words that differ only by tone have clips of their own.
    assert speech.clips("1021", "10") == ["moi-cong-dan-co-so", "mot", "nghin", "khong", "tram", "hai", "muoi",
                                          "mot-sac", "den-quay-so", "muoi-huyen"]


def test_every_clip_exists_and_the_folder_is_small():
    vi = STATIC / "audio" / "vi"
    for name in speech.CLIPS:
        assert (vi / f"{name}.ogg").stat().st_size > 200, name
    used = {c for n in range(10000) for c in speech.clips(n, n % 31)}
    assert used == set(speech.CLIPS)
    assert (STATIC / CHIME_URL.removeprefix("/static/")).is_file()
    total = sum(f.stat().st_size for f in (STATIC / "audio").rglob("*") if f.is_file())
    assert total < 1_000_000
    assert (vi / "mot.ogg").read_bytes()[:4] == b"OggS"


# -- the API --------------------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_announcement_api(client):
    r = await client.get("/api/announcement", params={"number": "1023", "counter": "5"})
    assert r.status_code == 200
    body = r.json()
    assert body["text"] == "Mời công dân có số một nghìn không trăm hai mươi ba đến quầy số năm"
    assert body["subtitle"] == "Mời công dân có số 1023 đến quầy số 5"
    assert body["clips"][0] == CLIP_URL.format("moi-cong-dan-co-so")
    assert [c.rsplit("/", 1)[1].removesuffix(".ogg") for c in body["clips"]] == speech.clips("1023", "5")
    for url in body["clips"] + [body["chime"]]:
        got = await client.get(url)
        assert got.status_code == 200 and got.content[:4] == b"OggS", url


@pytest.mark.anyio
@pytest.mark.parametrize("params", [{}, {"number": "1023"}, {"counter": "5"}, {"number": "abc", "counter": "5"},
                                    {"number": "10000", "counter": "5"}, {"number": "1023", "counter": "-1"},
                                    {"number": "1023", "counter": "5a"},
                                    # What int() would read but /openapi.json's pattern (^[0-9]{1,4}$) does not
                                    # allow: found by schemathesis, refused since.
                                    {"number": " 1023", "counter": "5"}, {"number": "1023", "counter": "5\n"},
                                    {"number": "00001", "counter": "5"}, {"number": "\u0661\u0660", "counter": "5"}])
async def test_announcement_api_refuses_bad_input(client, params):
    r = await client.get("/api/announcement", params=params)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_announcement" and err["message"] and err["message_vi"]

