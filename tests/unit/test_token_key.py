"""SYNCBRIDGE_TOKEN_KEY: required in production, checked at start-up, never echoed."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet

from syncbridge.adapters.tokens import TokenCipher
from syncbridge.cli import main
from syncbridge.config import DEV_TOKEN_KEY, ConfigError, Settings

REAL_KEY = Fernet.generate_key().decode()


def production_env(**changes: str | None) -> dict[str, str]:
    env = {s.env: f"real-{i}" for i, s in enumerate(Settings.describe()) if s.secret}
    env.update({"SYNCBRIDGE_FORMS_TOKENS": "zoho-forms=real-forms", "SYNCBRIDGE_ENV": "production",
                "SYNCBRIDGE_BROKER_URL": "amqp://mq//", "SYNCBRIDGE_TOKEN_KEY": REAL_KEY})
    for name, value in changes.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    return env


def test_production_starts_with_a_real_key():
    assert Settings.from_env(production_env()).token_key == REAL_KEY


@pytest.mark.parametrize("key", [None, DEV_TOKEN_KEY])
def test_production_without_a_key_of_its_own_refuses_to_start(key):
    with pytest.raises(ConfigError, match="production mode needs these settings.*SYNCBRIDGE_TOKEN_KEY"):
        Settings.from_env(production_env(SYNCBRIDGE_TOKEN_KEY=key))


def test_production_may_keep_the_development_key_only_to_decrypt_old_tokens():
    assert Settings.from_env(production_env(SYNCBRIDGE_TOKEN_KEY=f"{REAL_KEY},{DEV_TOKEN_KEY}"))
    with pytest.raises(ConfigError, match="development key must not encrypt tokens in production"):
        Settings.from_env(production_env(SYNCBRIDGE_TOKEN_KEY=f"{DEV_TOKEN_KEY},{REAL_KEY}"))


@pytest.mark.parametrize(("key", "fragment"), [
    ("my secret passphrase", "key 1 of 1 is not a Fernet key"),
    (f"{REAL_KEY},{REAL_KEY[:-2]}", "key 2 of 2 is not a Fernet key"),
    (f"{REAL_KEY}junk", "key 1 of 1 is not a Fernet key"),
    (" , ", "SYNCBRIDGE_TOKEN_KEY is empty"),
])
def test_a_malformed_key_is_a_clear_error_that_does_not_echo_it(key, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        Settings.from_env({"SYNCBRIDGE_TOKEN_KEY": key})
    assert "passphrase" not in str(err.value) and REAL_KEY[:20] not in str(err.value)


def test_the_cli_in_production_without_a_key_stops_with_one_line(monkeypatch):
    for name, value in production_env(SYNCBRIDGE_TOKEN_KEY=None).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SYNCBRIDGE_TOKEN_KEY", raising=False)

    result = CliRunner().invoke(main, ["status"])

    assert result.exit_code != 0
    assert "SYNCBRIDGE_TOKEN_KEY" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_development_default_is_a_working_key():
    cipher = TokenCipher(Settings.from_env({}).token_key)
    assert cipher.decrypt(cipher.encrypt("token")) == "token"
