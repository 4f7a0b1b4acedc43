"""Settings: defaults for development, fail fast on bad or missing values."""
import pytest

from producers.topology import build_topology, topology_for
from syncbridge.config import ConfigError, Settings


def test_development_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.embedded_broker
    assert settings.effective_broker_url.startswith("memory://")
    assert settings.zoho_modules == {"Contacts": "person", "Accounts": "company", "Deals": "contract"}
    assert settings.forms_tokens["zoho-forms"] == "dev-forms-token"
    assert settings.max_body_bytes == 65536


def test_values_come_from_prefixed_variables():
    settings = Settings.from_env({"SYNCBRIDGE_BROKER_URL": "amqp://u:p@mq//", "SYNCBRIDGE_ZOHO_MODULES": "Kunden=person"})
    assert not settings.embedded_broker
    assert settings.zoho_modules == {"Kunden": "person"}


def test_production_refuses_development_secrets():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SYNCBRIDGE_ENV": "production", "SYNCBRIDGE_BROKER_URL": "amqp://mq//"})
    message = str(err.value)
    assert "SYNCBRIDGE_ZOHO_WEBHOOK_TOKEN" in message and "SYNCBRIDGE_AMEISE_CLIENT_SECRET" in message


def test_production_starts_with_every_secret_set():
    secrets = {s.env: f"real-{i}" for i, s in enumerate(Settings.describe()) if s.secret}
    secrets["SYNCBRIDGE_FORMS_TOKENS"] = "zoho-forms=real-forms"
    secrets["SYNCBRIDGE_TOKEN_KEY"] = "cmVhbC10b2tlbi1rZXktMzItYnl0ZXMtbG9uZy0tLS0="
    settings = Settings.from_env({**secrets, "SYNCBRIDGE_ENV": "production", "SYNCBRIDGE_BROKER_URL": "amqp://mq//"})
    assert settings.production


def test_production_refuses_an_embedded_broker():
    secrets = {s.env: f"real-{i}" for i, s in enumerate(Settings.describe()) if s.secret}
    secrets["SYNCBRIDGE_FORMS_TOKENS"] = "zoho-forms=real-forms"
    secrets["SYNCBRIDGE_TOKEN_KEY"] = "cmVhbC10b2tlbi1rZXktMzItYnl0ZXMtbG9uZy0tLS0="
    with pytest.raises(ConfigError, match="SYNCBRIDGE_BROKER_URL"):
        Settings.from_env({**secrets, "SYNCBRIDGE_ENV": "production"})


@pytest.mark.parametrize("variable, value, fragment", [
    ("SYNCBRIDGE_MAX_BODY_BYTES", "lots", "whole number"),
    ("SYNCBRIDGE_PREFETCH_COUNT", "0", "positive"),
    ("SYNCBRIDGE_HTTP_TIMEOUT", "-1", "more than 0"),
    ("SYNCBRIDGE_RECORD_LEASE", "-1", "negative"),
    ("SYNCBRIDGE_ZOHO_MODULES", "Contacts=people", "kind must be one of"),
    ("SYNCBRIDGE_FORMS_TOKENS", "zoho-forms", "NAME=VALUE"),
    ("SYNCBRIDGE_ENV", "staging", "one of development, production"),
    ("SYNCBRIDGE_DAILYUP_ENCODING", "klingon", "one of auto, utf-8"),
    ("SYNCBRIDGE_DAILYUP_DELIMITER", ";;", "one character"),
])
def test_malformed_values_are_named_in_the_error(variable, value, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        Settings.from_env({variable: value})
    assert variable in str(err.value) or variable == "SYNCBRIDGE_ENV"


def test_an_encoding_is_taken_in_any_case():
    assert Settings.from_env({"SYNCBRIDGE_DAILYUP_ENCODING": "CP1252"}).dailyup_encoding == "CP1252"


def test_every_setting_is_described_with_a_default():
    described = Settings.describe()
    assert len({s.env for s in described}) == len(described)
    assert all(s.help for s in described)


def test_readme_lists_every_setting_with_its_default():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for setting in Settings.describe():
        default = f"`{setting.default}`" if setting.default else "(empty)"
        assert f"| `{setting.env}` | {default} |" in readme, setting.env


def test_every_malformed_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"SYNCBRIDGE_PREFETCH_COUNT": "many", "SYNCBRIDGE_DAILYUP_AT": "6 Uhr",
                           "SYNCBRIDGE_RETRY_DELAYS": "60,10", "SYNCBRIDGE_ALLOW_HTTP_OAUTH": "maybe"})
    lines = str(err.value).splitlines()
    assert sorted(line.split()[0] for line in lines) == [
        "SYNCBRIDGE_ALLOW_HTTP_OAUTH", "SYNCBRIDGE_DAILYUP_AT", "SYNCBRIDGE_PREFETCH_COUNT", "SYNCBRIDGE_RETRY_DELAYS"]


def test_values_are_typed_once_at_load():
    settings = Settings.from_env({"SYNCBRIDGE_PREFETCH_COUNT": "7", "SYNCBRIDGE_RETRY_DELAYS": "5, 50",
                                  "SYNCBRIDGE_ALLOW_HTTP_OAUTH": "yes", "SYNCBRIDGE_DAILYUP_AT": "05:30"})
    assert settings.prefetch_count == 7 and settings.retry_delays == (5, 50) and settings.allow_http_oauth is True
    assert settings.dailyup_at.hour == 5 and settings.dailyup_at.minute == 30
    assert settings.with_overrides(prefetch_count="9").prefetch_count == 9


def test_ameise_deep_links_follow_the_portal_setting():
    from syncbridge.config import ameise_deep_link

    assert ameise_deep_link("https://www.maklerinfo.biz", "customer", "5001234567") == \
        "https://www.maklerinfo.biz/maklerportal/?show=kunde&kunde=5001234567"
    assert ameise_deep_link("https://ameise.app/", "contract", "1119876") == \
        "https://ameise.app/maklerportal/?show=vertrag&vertrag=1119876"
    for wrong in ("maklerinfo", "ftp://ameise.app", "https://", "https://ameise.app:99999", "https://ameise .app"):
        with pytest.raises(ConfigError, match="SYNCBRIDGE_AMEISE_PORTAL_URL must be an http"):
            Settings.from_env({"SYNCBRIDGE_AMEISE_PORTAL_URL": wrong})
    for right in ("http://localhost:8080", "https://ameise.app/", "https://www.maklerinfo.biz"):
        assert Settings.from_env({"SYNCBRIDGE_AMEISE_PORTAL_URL": right}).ameise_portal_url == right


def test_the_topology_binds_the_direct_exchange_for_the_synced_modules_of_the_settings():
    topology = topology_for(Settings.from_env({"SYNCBRIDGE_ZOHO_MODULES": "Contacts=person,Policen=contract"}))
    assert topology.crm_change_keys == {"crm.contacts.changed", "crm.policen.changed"}
    assert topology.crm_exchange("crm.policen.changed") is topology.crm_changes
    assert topology.crm_exchange("crm.deals.changed") is topology.events
    assert topology.crm_exchange() is topology.events
    # build_topology's default is the settings' default
    assert topology_for(Settings.from_env({})).crm_change_keys == build_topology().crm_change_keys
