"""Redis URLs (CONTRACTS.md section 2): the three forms, their defaults, and clear refusals."""
import pytest

from hub.redis_url import parse
from hub.settings import Settings, SettingsError


def test_one_server():
    t = parse("redis://:s%40cret@10.0.0.5:6380/3?prefix=hn:")
    assert (t.kind, t.nodes, t.db, t.prefix, t.password) == ("single", (("10.0.0.5", 6380),), 3, "hn:", "s@cret")
    assert t.url == "redis://:s%40cret@10.0.0.5:6380/3"          # the query is queuecast's, not redis-py's
    assert parse("redis://cache").nodes == (("cache", 6379),) and parse("redis://cache").prefix == "qc:"


def test_cluster_seeds():
    t = parse("redis+cluster://a:7000,b:7001,[::1]:7002")
    assert (t.kind, t.nodes, t.db) == ("cluster", (("a", 7000), ("b", 7001), ("::1", 7002)), 0)


def test_sentinel_master_and_db():
    t = parse("redis+sentinel://s1:26379,s2/queuecast/2?prefix=x:")
    assert (t.kind, t.nodes, t.master, t.db, t.prefix) == \
        ("sentinel", (("s1", 26379), ("s2", 26379)), "queuecast", 2, "x:")
    assert parse("redis+sentinel://s1:26379/queuecast").db == 0


@pytest.mark.parametrize("url, says", [
    ("redis+sentinel://s1:26379", "master's name is missing"),
    ("redis+cluster://a:7000/1", "only database 0"),
    ("redis://a:port/0", "is not HOST:PORT"),
    ("redis://a:6379/zero", "is not a number"),
    ("redis://a:70000/0", "is not HOST:PORT"),
    ("rediss+cluster://a:7000", "not a Redis URL"),
])
def test_refusals_name_the_problem_and_the_forms(url, says):
    with pytest.raises(ValueError) as e:
        parse(url)
    assert says in str(e.value) and "redis+sentinel://HOST:PORT" in str(e.value)


def test_settings_take_every_form_and_refuse_the_rest():
    for url in ("redis://127.0.0.1:6379/0", "redis+cluster://127.0.0.1:7000", "redis+sentinel://127.0.0.1:26379/m/0"):
        assert Settings.from_env({"QUEUECAST_DATABASE": url, "QUEUECAST_SECRET": "x" * 32,
                                  "QUEUECAST_VAPID_PRIVATE_KEY": ""}).broker_url == url
    with pytest.raises(SettingsError, match="QUEUECAST_DATABASE: .*master's name is missing"):
        Settings.from_env({"QUEUECAST_DATABASE": "redis+sentinel://h:1"})
    with pytest.raises(SettingsError, match="QUEUECAST_BROKER"):
        Settings.from_env({"QUEUECAST_BROKER": "redis+cluster://"})
