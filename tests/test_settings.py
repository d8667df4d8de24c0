"""Settings of the notifier: read from the environment, validated at start (a bad value names its
variable), and the VAPID key kept beside the database like the token secret."""
from __future__ import annotations

import stat

import pytest

from hub.settings import Settings, SettingsError
from notifier.senders.webpush import vapid_public_key

# A P-256 private key in raw base64url (the form `web-push generate-vapid-keys` prints).
VAPID_KEY = "fqixSeLZA6J7LS-o5u1R-6HcMNzuBbu6kx7xZM_AUEM"


def test_notifier_defaults():
    s = Settings.from_env({})
    assert (s.notifier, s.notify_ahead, s.sms_provider) == ("inline", 5, "log")
    assert s.zalo_base_url == "https://business.openapi.zalo.me"
    assert s.vapid_subject == "mailto:queuecast@localhost"


def test_notifier_variables_are_read():
    s = Settings.from_env({
        "QUEUECAST_SMS_PROVIDER": "esms", "QUEUECAST_SMS_URL": "http://127.0.0.1:9999/", "QUEUECAST_SMS_KEY": "k",
        "QUEUECAST_SMS_SECRET": "s", "QUEUECAST_SMS_SENDER": "HANOI-HCC", "QUEUECAST_SMS_UNICODE": "on",
        "QUEUECAST_NOTIFY_AHEAD": "3", "QUEUECAST_ZALO_URL": "http://127.0.0.1:9998", "QUEUECAST_ZALO_TOKEN": "t",
        "QUEUECAST_ZALO_TEMPLATE": "246810", "QUEUECAST_VAPID_PRIVATE_KEY": VAPID_KEY,
        "QUEUECAST_VAPID_SUBJECT": "https://hanhchinhcong.hanoi.gov.vn", "QUEUECAST_NOTIFIER": "worker"})
    assert (s.sms_base_url, s.sms_key, s.sms_secret, s.sms_sender) == ("http://127.0.0.1:9999", "k", "s", "HANOI-HCC")
    assert s.sms_diacritics and s.notify_ahead == 3 and s.notifier == "worker"
    assert (s.zalo_base_url, s.zalo_token, s.zalo_template) == ("http://127.0.0.1:9998", "t", "246810")
    assert s.resolve_vapid_key() == VAPID_KEY and s.vapid_subject == "https://hanhchinhcong.hanoi.gov.vn"


@pytest.mark.parametrize("provider, unicode, diacritics", [
    ("esms", "", False), ("twilio", "", True), ("log", "", True),
    ("esms", "1", True), ("esms", "ON", True), ("twilio", "off", False), ("twilio", "false", False),
])
def test_sms_diacritics_follow_the_provider_unless_set(provider, unicode, diacritics):
    env = {"QUEUECAST_SMS_PROVIDER": provider, "QUEUECAST_SMS_UNICODE": unicode}
    assert Settings.from_env(env).sms_diacritics is diacritics


def test_sms_base_url_defaults_to_the_providers_public_endpoint():
    assert Settings(sms_provider="esms").sms_base_url == "https://rest.esms.vn"
    assert Settings(sms_provider="twilio").sms_base_url == "https://api.twilio.com"


@pytest.mark.parametrize("var, value", [
    ("QUEUECAST_SMS_UNICODE", "maybe"),
    ("QUEUECAST_SMS_URL", "rest.esms.vn"),
    ("QUEUECAST_ZALO_URL", "ftp://openapi.zalo.me"),
    ("QUEUECAST_ZALO_TEMPLATE", "queue-template"),
    ("QUEUECAST_NOTIFY_AHEAD", "0"),
    ("QUEUECAST_NOTIFY_AHEAD", "five"),
    ("QUEUECAST_VAPID_SUBJECT", "admin@hanoi.gov.vn"),
    ("QUEUECAST_VAPID_SUBJECT", "http://hanoi.gov.vn"),
    ("QUEUECAST_VAPID_PRIVATE_KEY", "not-a-key"),
    ("QUEUECAST_VAPID_PRIVATE_KEY", "AAAA"),
    ("QUEUECAST_SMS_PROVIDER", "viettel"),
    ("QUEUECAST_NOTIFIER", "both"),
    ("QUEUECAST_KEEP_OUTBOX_DAYS", "2"),            # shorter than a number's life: a key could be owed again
    ("QUEUECAST_KEEP_OUTBOX_DAYS", "a month"),
    ("QUEUECAST_KEEP_PREDICTIONS_DAYS", "-1"),
    ("QUEUECAST_LOG_KEEP_DAYS", "2"),               # under 3: a day still growing could be trimmed
    ("QUEUECAST_LOG_KEEP_DAYS", "three"),
])
def test_a_bad_value_names_its_variable(var, value):
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({var: value})


def test_vapid_key_is_generated_once_and_kept_beside_the_database(tmp_path):
    s = Settings(database=f"sqlite:///{tmp_path}/hub.db")
    key = s.resolve_vapid_key()
    kept = tmp_path / "hub.db.vapid"
    assert kept.read_text().strip() == key
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert Settings(database=f"sqlite:///{tmp_path}/hub.db").resolve_vapid_key() == key     # a restart keeps it
    assert Settings(database=f"sqlite:///{tmp_path}/other.db").resolve_vapid_key() != key
    public = vapid_public_key(key)
    assert len(public) == 87 and public != vapid_public_key(VAPID_KEY)    # 65-byte uncompressed point


def test_vapid_key_beside_the_database_is_checked(tmp_path):
    (tmp_path / "hub.db.vapid").write_text("garbage\n")
    with pytest.raises(SettingsError, match="hub.db.vapid"):
        Settings(database=f"sqlite:///{tmp_path}/hub.db").resolve_vapid_key()


def test_vapid_key_is_required_with_redis():
    with pytest.raises(SettingsError, match="QUEUECAST_VAPID_PRIVATE_KEY"):
        Settings(database="redis://127.0.0.1:6379/0", secret="x").resolve_vapid_key()
    assert Settings(database="redis://127.0.0.1:6379/0", vapid_private_key=VAPID_KEY).resolve_vapid_key() == VAPID_KEY


def test_secret_is_still_kept_beside_the_database(tmp_path):
    s = Settings(database=f"sqlite:///{tmp_path}/hub.db")
    assert s.resolve_secret() == (tmp_path / "hub.db.secret").read_text().strip() == s.resolve_secret()
    with pytest.raises(SettingsError, match="QUEUECAST_SECRET"):
        Settings(database="redis://127.0.0.1:6379/0").resolve_secret()


@pytest.mark.parametrize("database, replicas", [
    ("redis://127.0.0.1:6379/0", 0),                                    # one server: nothing to wait for
    ("redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/qc/0", 1),        # a failover promotes a replica
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", 1),
    ("sqlite:///./queuecast.db", 0),
])
def test_appends_wait_for_a_replica_where_a_failover_can_promote_one(database, replicas):
    s = Settings.from_env({"QUEUECAST_DATABASE": database, "QUEUECAST_SECRET": "s"})
    assert (s.redis_replicas(), s.redis_wait_ms) == (replicas, 500)
    s = Settings.from_env({"QUEUECAST_DATABASE": "redis+sentinel://h:26379/qc/0", "QUEUECAST_REDIS_MIN_REPLICAS": "2",
                           "QUEUECAST_REDIS_WAIT_MS": "250"})
    assert (s.redis_replicas(), s.redis_wait_ms) == (2, 250)


@pytest.mark.parametrize("env", [
    {"QUEUECAST_REDIS_MIN_REPLICAS": "one"},
    {"QUEUECAST_REDIS_MIN_REPLICAS": "-1"},
    {"QUEUECAST_REDIS_MIN_REPLICAS": "17"},
    {"QUEUECAST_REDIS_MIN_REPLICAS": "1", "QUEUECAST_DATABASE": "sqlite:///./queuecast.db"},   # SQLite has none
    {"QUEUECAST_REDIS_WAIT_MS": "0"},
    {"QUEUECAST_REDIS_WAIT_MS": "half a second"},
    {"QUEUECAST_REDIS_WAIT_MS": "600000"},
])
def test_a_bad_replica_setting_names_its_variable(env):
    var = next(iter(env))
    with pytest.raises(SettingsError, match=var):
        Settings.from_env({"QUEUECAST_DATABASE": "redis+sentinel://h:26379/qc/0", **env})
