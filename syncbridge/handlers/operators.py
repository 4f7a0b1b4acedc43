"""The people who run the service: dashboard users, their roles, sign-in with limits, and the audit log.

:class:`Operators` is what the dashboard and ``syncbridge users`` call.  Every
change to a user is written to the audit log with who made it; any other
operator action is recorded through :meth:`Operators.record`.  Failed sign-ins
are counted in the store (so every process of the dashboard sees them) per
account and per client address, both only as hashes.  Password hashing is given
(``syncbridge.bootstrap`` passes werkzeug's): no Flask or SQLAlchemy in here.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syncbridge.ports import ROLES, AuditEntry, Operator, OperatorStore

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class OperatorError(ValueError):
    """A user change that cannot be made: ``code`` says which rule (for a translated text), the message why."""

    def __init__(self, code: str, message: str, **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class LoginLimits:
    """How many failed sign-ins within ``window`` seconds lock an account / a client address."""

    per_account: int = 5
    per_address: int = 20
    window: float = 900.0


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: the operator, or why not (``invalid`` or ``limited``)."""

    operator: Operator | None
    refused: str | None = None      # None, "invalid", "limited"


def has_role(role: str, needed: str) -> bool:
    """Whether ``role`` includes ``needed`` (admin > operator > viewer); unknown roles include nothing."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def _key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Operators:
    """User management and sign-in over an :class:`~syncbridge.ports.OperatorStore`."""

    def __init__(self, store: OperatorStore, *, hash_password: Callable[[str], str],
                 check_password: Callable[[str, str], bool], limits: LoginLimits | None = None,
                 now: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self._hash = hash_password
        self._check = check_password
        self.limits = limits or LoginLimits()
        self.now = now
        # Checked against when a username is unknown, so an unknown name takes as long as a wrong password.
        self._dummy_hash = hash_password("not a password of anyone")

    # ---------------------------------------------------------------- users
    def operators(self) -> list[Operator]:
        return self.store.operators()

    def get(self, operator_id: int) -> Operator | None:
        return self.store.operator_by_id(operator_id)

    def find(self, username: str) -> Operator | None:
        return self.store.operator(username.strip().lower())

    def create(self, username: str, password: str, role: str, *, by: str) -> Operator:
        username = username.strip().lower()   # one account per name, whatever its case
        if not USERNAME.match(username):
            raise OperatorError("bad_username", "a username has 1 to 64 letters, digits or . _ @ - and starts with a letter or digit")
        self._check_role(role)
        self._check_password(password)
        if self.store.operator(username) is not None:
            raise OperatorError("exists", f"user {username} exists already", username=username)
        try:
            operator = self.store.add_operator(username, role, self._hash(password))
        except ValueError:
            raise OperatorError("exists", f"user {username} exists already", username=username) from None
        self.record(by, "user.created", username, role=role)
        return operator

    def set_role(self, username: str, role: str, *, by: str) -> Operator:
        self._check_role(role)
        current = self._existing(username)
        username = current.username
        if current.role == role:
            return current
        if current.role == "admin" and self.store.count_admins() <= 1:
            raise OperatorError("last_admin", f"{username} is the last admin: make another user admin first",
                                username=username)
        operator = self.store.update_operator(username, role=role)
        self.record(by, "user.role_changed", username, old=current.role, new=role)
        return operator

    def set_password(self, username: str, password: str, *, by: str) -> Operator:
        username = self._existing(username).username
        self._check_password(password)
        operator = self.store.update_operator(username, password_hash=self._hash(password))
        self.store.clear_failed_logins(_key("account", username.lower()))
        self.record(by, "user.password_set", username)
        return operator

    def delete(self, username: str, *, by: str) -> None:
        current = self._existing(username)
        username = current.username
        if current.role == "admin" and self.store.count_admins() <= 1:
            raise OperatorError("last_admin", f"{username} is the last admin and cannot be deleted", username=username)
        self.store.delete_operator(username)
        self.record(by, "user.deleted", username, role=current.role)

    # ---------------------------------------------------------------- sign-in
    def sign_in(self, username: str, password: str, client: str) -> SignIn:
        """Check a sign-in; too many recent failures of the account or the address refuse it unchecked."""
        account, address = _key("account", username.strip().lower()), _key("address", client)
        now = self.now()
        since = now - timedelta(seconds=self.limits.window)
        if (self.store.failed_logins(account, since) >= self.limits.per_account
                or self.store.failed_logins(address, since) >= self.limits.per_address):
            return SignIn(None, "limited")
        operator = self.find(username) if len(password) <= MAX_PASSWORD else None
        if operator is None:
            self._check(self._dummy_hash, password[:MAX_PASSWORD])
            valid = False
        else:
            valid = self._check(operator.password_hash, password)
        if not valid:
            self.store.prune_failed_logins(since)        # what no longer counts, so the table stays small
            self.store.note_failed_login((account, address), now)
            return SignIn(None, "invalid")
        self.store.clear_failed_logins(account)
        return SignIn(operator)

    # ---------------------------------------------------------------- audit
    def record(self, actor: str, action: str, target: str = "", **details: Any) -> AuditEntry:
        """Write one operator action to the audit log."""
        return self.store.audit(AuditEntry(actor=actor, action=action, target=target, details=details, at=self.now()))

    def audit_entries(self, *, before_id: int | None = None, limit: int = 50) -> list[AuditEntry]:
        return self.store.audit_entries(before_id=before_id, limit=limit)

    # ---------------------------------------------------------------- checks
    def _existing(self, username: str) -> Operator:
        operator = self.find(username)
        if operator is None:
            raise OperatorError("unknown", f"no user {username}", username=username)
        return operator

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise OperatorError("bad_role", f"role must be one of {', '.join(ROLES)}")

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise OperatorError("short_password", f"a password has at least {MIN_PASSWORD} characters", min=MIN_PASSWORD)
        if len(password) > MAX_PASSWORD:
            raise OperatorError("long_password", f"a password has at most {MAX_PASSWORD} characters", max=MAX_PASSWORD)
