"""Users, roles, sign-in limits and the audit log of the core (syncbridge.handlers.operators) on a real SQL store."""
from __future__ import annotations

import pytest

from syncbridge.bootstrap import build_operators
from syncbridge.config import Settings
from syncbridge.handlers.operators import OperatorError, has_role
from tests.support.clock import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def operators(store, database_url, clock):
    settings = Settings.from_env({}, database_url=database_url, dashboard_login_attempts="3",
                                 dashboard_login_attempts_per_address="5", dashboard_login_window="600")
    return build_operators(settings, store=store, now=clock)


def test_roles_include_the_ones_below():
    assert has_role("admin", "operator") and has_role("admin", "viewer") and has_role("operator", "viewer")
    assert not has_role("viewer", "operator") and not has_role("operator", "admin")
    assert not has_role("root", "viewer") and not has_role("admin", "superuser")


@pytest.mark.real_password_hashing
def test_a_user_is_created_with_a_hashed_password_and_audited(operators):
    user = operators.create("Anna.Schmidt", "geheimes-passwort", "operator", by="cli:root")

    assert user.username == "anna.schmidt" and user.role == "operator"
    assert "geheimes-passwort" not in user.password_hash and user.password_hash.startswith("scrypt:")
    assert operators.sign_in("ANNA.SCHMIDT", "geheimes-passwort", "10.0.0.1").operator == user
    [entry] = operators.audit_entries()
    assert (entry.actor, entry.action, entry.target, entry.details) == ("cli:root", "user.created", "anna.schmidt",
                                                                        {"role": "operator"})


@pytest.mark.parametrize(("username", "password", "role", "code"), [
    ("", "long-enough-1", "viewer", "bad_username"),
    ("with space", "long-enough-1", "viewer", "bad_username"),
    ("x" * 65, "long-enough-1", "viewer", "bad_username"),
    ("anna", "short", "viewer", "short_password"),
    ("anna", "x" * 1025, "viewer", "long_password"),
    ("anna", "long-enough-1", "root", "bad_role"),
])
def test_a_bad_user_is_refused_with_its_reason(operators, username, password, role, code):
    with pytest.raises(OperatorError) as refused:
        operators.create(username, password, role, by="t")
    assert refused.value.code == code
    assert operators.operators() == [] and operators.audit_entries() == []


def test_a_username_is_taken_whatever_its_case(operators):
    operators.create("anna", "long-enough-1", "viewer", by="t")
    with pytest.raises(OperatorError) as refused:
        operators.create("ANNA", "long-enough-2", "admin", by="t")
    assert refused.value.code == "exists"


def test_the_last_admin_can_be_neither_demoted_nor_deleted(operators):
    operators.create("chef", "long-enough-1", "admin", by="t")
    for change in (lambda: operators.set_role("chef", "viewer", by="t"), lambda: operators.delete("chef", by="t")):
        with pytest.raises(OperatorError) as refused:
            change()
        assert refused.value.code == "last_admin"
    operators.create("vertretung", "long-enough-2", "admin", by="t")
    operators.set_role("chef", "viewer", by="vertretung")
    assert operators.find("chef").role == "viewer"
    assert [e.action for e in operators.audit_entries()][:1] == ["user.role_changed"]


def test_a_new_password_replaces_the_old_one(operators, clock):
    operators.create("anna", "old-password-1", "viewer", by="t")
    before = operators.find("anna").password_changed_at
    clock.advance(60)
    operators.set_password("anna", "new-password-1", by="admin")

    assert operators.sign_in("anna", "old-password-1", "10.0.0.1").refused == "invalid"
    assert operators.sign_in("anna", "new-password-1", "10.0.0.1").operator is not None
    assert operators.find("anna").password_changed_at > before


def test_failed_sign_ins_lock_the_account_for_the_window(operators, clock):
    operators.create("anna", "right-password", "viewer", by="t")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):     # three addresses: the account's limit (3) counts
        assert operators.sign_in("anna", "wrong-password", address).refused == "invalid"

    # Locked: even the right password is not checked now, from anywhere.
    assert operators.sign_in("anna", "right-password", "10.0.0.9").refused == "limited"
    clock.advance(601)
    assert operators.sign_in("anna", "right-password", "10.0.0.9").operator is not None


def test_failed_sign_ins_lock_a_client_address_whatever_the_account(operators, clock):
    operators.create("anna", "right-password", "viewer", by="t")
    for n in range(5):                                        # five unknown names from one address
        assert operators.sign_in(f"guess{n}", "whatever-it-is", "10.0.0.66").refused == "invalid"

    assert operators.sign_in("anna", "right-password", "10.0.0.66").refused == "limited"
    assert operators.sign_in("anna", "right-password", "10.0.0.7").operator is not None   # another address
    clock.advance(601)
    assert operators.sign_in("anna", "right-password", "10.0.0.66").operator is not None


def test_a_successful_sign_in_forgets_the_account_failures(operators):
    operators.create("anna", "right-password", "viewer", by="t")
    for _ in range(2):
        operators.sign_in("anna", "wrong-password", "10.0.0.1")
    assert operators.sign_in("anna", "right-password", "10.0.0.1").operator is not None
    for _ in range(2):
        operators.sign_in("anna", "wrong-password", "10.0.0.1")
    assert operators.sign_in("anna", "right-password", "10.0.0.1").operator is not None   # 2 < 3 again


def test_failed_sign_ins_are_stored_only_as_hashes(operators, store):
    from sqlalchemy import text

    operators.sign_in("anna.schmidt", "wrong-password", "192.0.2.44")
    with store.engine.connect() as conn:
        keys = [row.key for row in conn.execute(text("SELECT key FROM failed_logins"))]
    assert len(keys) == 2 and not any("anna" in key or "192.0.2.44" in key for key in keys)


def test_the_audit_log_pages_newest_first(operators):
    for n in range(5):
        operators.record("anna", "direction.paused", f"target-{n}")
    first = operators.audit_entries(limit=2)
    older = operators.audit_entries(before_id=first[-1].id, limit=2)
    assert [e.target for e in first + older] == ["target-4", "target-3", "target-2", "target-1"]


def test_failures_older_than_the_window_are_pruned(operators, store, clock):
    from sqlalchemy import text

    operators.create("anna", "right-password", "viewer", by="t")
    operators.sign_in("anna", "wrong-password", "10.0.0.1")
    clock.advance(601)
    operators.sign_in("anna", "wrong-password", "10.0.0.2")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM failed_logins")).scalar_one() == 2   # only the newest pair
