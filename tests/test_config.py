"""hub.config: the bundled hanoi.toml, and one test per validation rule of the loader."""
from __future__ import annotations

import copy
import tomllib
from datetime import date, datetime, time
from pathlib import Path

import pytest

from hub.config import BUNDLED, ConfigError, load_config, parse_config
from hub.domain.config import Policy

_RAW = tomllib.loads(BUNDLED.read_text(encoding="utf-8"))


@pytest.fixture
def raw() -> dict:
    """A fresh copy of the bundled file, parsed but not validated, for a test to break."""
    return copy.deepcopy(_RAW)


def fails(data: dict, path: str) -> str:
    """parse_config must reject `data`, naming the file and exactly `path`; returns the message."""
    with pytest.raises(ConfigError) as err:
        parse_config(data, "hanoi.toml")
    message = str(err.value)
    assert message.startswith(f"hanoi.toml: {path}: "), message
    return message


def index(raw: dict, branch: int, service: str) -> int:
    return raw["branches"][branch]["services"].index(service)


# -- the bundled configuration ----------------------------------------------------------

@pytest.fixture(scope="module")
def centre():
    return load_config()


def test_bundled_config_loads(centre):
    assert centre.name == "Trung tâm Phục vụ hành chính công thành phố Hà Nội"
    assert centre.timezone == "Asia/Ho_Chi_Minh"
    assert load_config(BUNDLED) == centre
    assert load_config(str(BUNDLED)) == centre


def test_twelve_branches_in_order(centre):
    assert list(centre.branches) == [str(n) for n in range(1, 13)]
    for n, branch in centre.branches.items():
        assert branch.name == f"Chi nhánh số {n}"
        assert branch.name_en == f"Branch No. {n}"


def test_branch_1_is_the_inter_agency_building(centre):
    assert "258 Võ Chí Công" in centre.branches["1"].address


def test_number_ranges_are_disjoint_four_digit_blocks(centre):
    for branch in centre.branches.values():
        taken: set[int] = set()
        for service in branch.services.values():
            numbers = set(range(service.first_number, service.last_number + 1))
            assert not numbers & taken, (branch.id, service.id)
            assert 1000 <= service.first_number and service.last_number <= 9999
            assert 0 < service.daily_cap < 1000
            taken |= numbers


def test_number_identifies_field_across_branches(centre):
    # A field keeps its first number in every branch, so "số 1023" is land everywhere.
    firsts: dict[str, int] = {}
    for branch in centre.branches.values():
        for service in branch.services.values():
            assert firsts.setdefault(service.id, service.first_number) == service.first_number
    assert firsts["dat-dai"] == 1001 and firsts["ho-tich"] == 2001


def test_counters_cover_every_service(centre):
    for branch in centre.branches.values():
        assert 6 <= len(branch.counters) <= 16, branch.id
        served = {s for c in branch.counters.values() for s in c.services}
        assert served == set(branch.services), branch.id
        assert list(branch.counters) == [str(n) for n in range(1, len(branch.counters) + 1)]


def test_branch_services_keep_listed_order_and_cap_overrides(centre, raw):
    branch = centre.branches["1"]
    assert list(branch.services) == raw["branches"][0]["services"]
    assert branch.services["dat-dai"].daily_cap == 400          # caps = { "dat-dai" = 400 }
    assert branch.services["dat-dai"].last_number == 1400
    assert centre.branches["3"].services["dat-dai"].daily_cap == 250   # the catalogue's
    assert branch.services["tu-phap-chung-thuc"].service_minutes == 6.0


def test_policy_defaults(centre):
    policy = centre.branches["2"].policy
    assert policy.opens == time(8, 0)
    assert policy.closes == time(17, 0)
    assert policy.issuing_until == time(16, 0)
    assert policy.online_from == time(20, 0)
    assert (policy.per_field, policy.per_day) == (1, 2)
    assert (policy.noshow_limit, policy.noshow_window_days, policy.online_ban_days) == (3, 30, 30)
    assert policy.priority_age == 75
    assert policy.absent == "skip"
    assert (policy.hold_minutes, policy.recall_minutes) == (10, 15)


def test_branch_policy_overrides_centre_policy(centre):
    assert centre.branches["1"].policy.absent == "hold"
    assert all(b.policy.absent == "skip" for b in centre.branches.values() if b.id != "1")
    assert centre.branches["1"].policy.opens == time(8, 0)      # the rest still inherited


def test_centre_policy_overrides_defaults_and_branch_overrides_centre(raw):
    raw["policy"] = {"closes": "17:30", "priority_age": 80}
    raw["branches"][4]["policy"] = {"priority_age": 70}
    centre = parse_config(raw, "hanoi.toml")
    assert centre.branches["1"].policy.closes == time(17, 30)
    assert centre.branches["1"].policy.opens == Policy().opens
    assert centre.branches["1"].policy.priority_age == 80
    assert centre.branches["5"].policy.priority_age == 70
    assert centre.branches["5"].policy.closes == time(17, 30)


def test_calendar(centre):
    calendar = centre.branches["7"].calendar
    assert calendar.working_weekdays == frozenset(range(5))
    assert calendar.is_working_day(date(2026, 3, 2))            # an ordinary Monday
    assert not calendar.is_working_day(date(2026, 3, 7))        # a Saturday
    assert not calendar.is_working_day(date(2026, 1, 1))
    assert not calendar.is_working_day(date(2026, 2, 17))       # Tết
    assert not calendar.is_working_day(date(2026, 9, 2))
    assert calendar.is_working_day(date(2026, 8, 22))           # make-up Saturday


# -- reading files ----------------------------------------------------------------------

def test_toml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "branch.toml"
    bad.write_text('[centre]\nname = "x"\n\n[policy]\ncloses = 17:00\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(bad) in str(err.value)
    assert "line 5" in str(err.value)


def test_non_utf8_file(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[centre]\nname = "Hà"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.toml"):
        load_config(bad)


def test_typo_in_a_file_names_file_and_key(tmp_path):
    text = BUNDLED.read_text(encoding="utf-8").replace('closes = "17:00"', 'closs = "17:00"', 1)
    bad = tmp_path / "hanoi.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value).startswith(f"{bad}: policy.closs: unknown key")


# -- one test per validation rule -------------------------------------------------------

@pytest.mark.parametrize("where, key", [
    (lambda r: r, "centre"),
    (lambda r: r["centre"], "centre.name"),
    (lambda r: r["centre"], "centre.timezone"),
    (lambda r: r["services"][3], "services[3].daily_cap"),
    (lambda r: r["branches"][3], "branches[3].counters"),
    (lambda r: r["branches"][1], "branches[1].address"),
    (lambda r: r["branches"][2]["counters"][4], "branches[2].counters[4].services"),
])
def test_missing_required_key(raw, where, key):
    del where(raw)[key.rsplit(".", 1)[-1]]
    assert "missing required key" in fails(raw, key)


@pytest.mark.parametrize("where, key, path", [
    (lambda r: r, "polcy", "polcy"),
    (lambda r: r["policy"], "closs", "policy.closs"),
    (lambda r: r["centre"], "holiday", "centre.holiday"),
    (lambda r: r["services"][0], "cap", "services[0].cap"),
    (lambda r: r["branches"][6], "adress", "branches[6].adress"),
    (lambda r: r["branches"][0]["policy"], "absnt", "branches[0].policy.absnt"),
    (lambda r: r["branches"][9]["counters"][2], "service", "branches[9].counters[2].service"),
])
def test_unknown_key_rejected(raw, where, key, path):
    where(raw)[key] = "x"
    assert "unknown key" in fails(raw, path)


@pytest.mark.parametrize("mutate, path", [
    (lambda r: r["centre"].update(name=5), "centre.name"),
    (lambda r: r["centre"].update(name_en="  "), "centre.name_en"),
    (lambda r: r.update(services={}), "services"),
    (lambda r: r.update(branches=[]), "branches"),
    (lambda r: r["services"][1].update(first_number="2001"), "services[1].first_number"),
    (lambda r: r["services"][1].update(daily_cap=True), "services[1].daily_cap"),
    (lambda r: r["services"][1].update(daily_cap=0), "services[1].daily_cap"),
    (lambda r: r["services"][1].update(daily_cap=1000), "services[1].daily_cap"),
    (lambda r: r["services"][1].update(first_number=501), "services[1].first_number"),
    (lambda r: r["services"][2].update(service_minutes="14"), "services[2].service_minutes"),
    (lambda r: r["services"][2].update(service_minutes=0), "services[2].service_minutes"),
    (lambda r: r["policy"].update(per_day=0), "policy.per_day"),
    (lambda r: r["policy"].update(hold_minutes=2.5), "policy.hold_minutes"),
    (lambda r: r["branches"][0].update(services="dat-dai"), "branches[0].services"),
    (lambda r: r["branches"][0].update(id=1), "branches[0].id"),
    (lambda r: r["branches"][0].update(caps=[]), "branches[0].caps"),
    (lambda r: r["branches"][0].update(policy="hold"), "branches[0].policy"),
    (lambda r: r["branches"][0]["counters"][1].update(id=""), "branches[0].counters[1].id"),
    (lambda r: r["branches"][0]["counters"][1].update(services=[]),
     "branches[0].counters[1].services"),
])
def test_wrong_type_or_value(raw, mutate, path):
    mutate(raw)
    fails(raw, path)


@pytest.mark.parametrize("value", ["8:00", "08:00:00", "24:00", "08:60", "8h", 800])
def test_time_must_be_hh_mm(raw, value):
    raw["policy"]["opens"] = value
    assert "HH:MM" in fails(raw, "policy.opens")


def test_online_from_must_be_a_valid_time(raw):
    raw["branches"][1]["policy"] = {"online_from": "20h"}
    fails(raw, "branches[1].policy.online_from")


def test_opens_before_issuing_until(raw):
    raw["policy"]["issuing_until"] = "08:00"
    assert "after opens" in fails(raw, "policy.issuing_until")


def test_issuing_until_not_after_closes(raw):
    raw["policy"]["issuing_until"] = "17:30"
    assert "after closes" in fails(raw, "policy.issuing_until")


def test_branch_closing_before_centre_issuing_until_blames_the_branch_key(raw):
    raw["branches"][4]["policy"] = {"closes": "15:00"}
    fails(raw, "branches[4].policy.closes")


@pytest.mark.parametrize("where, path", [
    (lambda r: r["policy"], "policy.absent"),
    (lambda r: r["branches"][0]["policy"], "branches[0].policy.absent"),
])
def test_absent_is_skip_or_hold(raw, where, path):
    where(raw)["absent"] = "wait"
    fails(raw, path)


@pytest.mark.parametrize("key, i, value", [
    ("holidays", 2, "2026-02-30"),
    ("holidays", 0, "01/01/2026"),
    ("holidays", 1, "20260216"),
    ("holidays", 3, datetime(2026, 2, 18, 8, 0)),
    ("extra_working_days", 0, "22/08/2026"),
])
def test_dates_are_iso(raw, key, i, value):
    raw["centre"][key][i] = value
    assert "ISO date" in fails(raw, f"centre.{key}[{i}]")


def test_iso_date_strings_are_accepted(raw):
    raw["centre"]["extra_working_days"] = ["2026-08-22"]
    centre = parse_config(raw, "hanoi.toml")
    assert centre.branches["1"].calendar.extra_working_days == {date(2026, 8, 22)}


@pytest.mark.parametrize("days, i", [(["mon", "tues"], 1), (["Mon"], 0), (["mon", "mon"], 1)])
def test_weekday_names(raw, days, i):
    raw["centre"]["working_days"] = days
    fails(raw, f"centre.working_days[{i}]")


def test_working_days_may_include_saturday(raw):
    raw["centre"]["working_days"] = ["mon", "tue", "wed", "thu", "fri", "sat"]
    assert parse_config(raw, "x").branches["1"].calendar.working_weekdays == frozenset(range(6))


@pytest.mark.parametrize("tz", ["Asia/Hanoi", "Mars/Olympus", "", "../etc/passwd"])
def test_timezone_known_to_zoneinfo(raw, tz):
    raw["centre"]["timezone"] = tz
    fails(raw, "centre.timezone")


def test_branch_ids_unique(raw):
    raw["branches"][5]["id"] = "1"
    assert "duplicate branch id '1'" in fails(raw, "branches[5].id")


def test_service_ids_unique(raw):
    raw["services"][4]["id"] = "dat-dai"
    assert "duplicate service id" in fails(raw, "services[4].id")


def test_service_id_is_a_slug(raw):
    raw["services"][0]["id"] = "Đất đai"
    fails(raw, "services[0].id")


def test_branch_services_known(raw):
    raw["branches"][2]["services"][1] = "abc"
    assert "unknown service 'abc'" in fails(raw, "branches[2].services[1]")


def test_branch_services_not_repeated(raw):
    raw["branches"][2]["services"].append("dat-dai")
    fails(raw, f"branches[2].services[{len(raw['branches'][2]['services']) - 1}]")


def test_counter_ids_unique_per_branch(raw):
    raw["branches"][2]["counters"][1]["id"] = "1"
    assert "duplicate counter id" in fails(raw, "branches[2].counters[1].id")
    # the same counter ids in different branches are fine
    assert parse_config(copy.deepcopy(_RAW), "x").branches["3"].counters["1"]


def test_counter_service_unknown(raw):
    raw["branches"][2]["counters"][0]["services"] = ["dat-dai", "abc"]
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "hanoi.toml")
    assert str(err.value) == "hanoi.toml: branches[2].counters[0].services[1]: unknown service 'abc'"


def test_counter_service_within_branch_services(raw):
    assert "dau-tu" not in raw["branches"][5]["services"]
    raw["branches"][5]["counters"][0]["services"] = ["dat-dai", "dau-tu"]
    assert "'dau-tu'" in fails(raw, "branches[5].counters[0].services[1]")


def test_every_branch_service_served_by_a_counter(raw):
    raw["branches"][6]["services"].append("dau-tu")
    path = f"branches[6].services[{index(raw, 6, 'dau-tu')}]"
    assert "no counter serves 'dau-tu'" in fails(raw, path)


def test_cap_override_overlapping_next_range(raw):
    raw["branches"][2]["caps"] = {"xay-dung": 600}              # 4001-4600 runs into 4501
    message = fails(raw, "branches[2].caps.xay-dung")
    assert "'van-hoa-the-thao-du-lich'" in message


def test_cap_override_past_four_digits(raw):
    raw["branches"][0]["caps"]["y-te"] = 600                     # 9501-10100
    assert "past 9999" in fails(raw, "branches[0].caps.y-te")


def test_catalogue_ranges_overlap_within_a_branch(raw):
    raw["services"][1]["first_number"] = 1100                   # inside Đất đai's 1001-1250
    fails(raw, "services[1].first_number")


def test_overlap_only_matters_within_a_branch(raw):
    # Đầu tư (8001-) is served by branches 1 and 2 only; make Nông nghiệp collide with it
    # elsewhere and drop it from those two branches: no branch has both, so it loads.
    raw["services"][[s["id"] for s in raw["services"]].index("nong-nghiep-moi-truong")][
        "first_number"] = 8001
    for b in raw["branches"][:2]:
        b["services"].remove("nong-nghiep-moi-truong")
        for c in b["counters"]:
            c["services"] = [s for s in c["services"] if s != "nong-nghiep-moi-truong"] or ["y-te"]
    assert parse_config(raw, "x").branches["3"].services["nong-nghiep-moi-truong"].first_number == 8001


def test_cap_override_for_service_not_in_branch(raw):
    raw["branches"][5]["caps"] = {"dau-tu": 50}
    fails(raw, "branches[5].caps.dau-tu")


@pytest.mark.parametrize("cap", [0, 1000, "300"])
def test_cap_override_value(raw, cap):
    raw["branches"][0]["caps"]["dat-dai"] = cap
    fails(raw, "branches[0].caps.dat-dai")


def test_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_missing_file_is_not_silently_the_bundled_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(Path(tmp_path) / "nope.toml")
