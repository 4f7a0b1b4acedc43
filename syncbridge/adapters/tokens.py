"""Token stores: the in-memory one, and the encryption of tokens at rest.

:class:`TokenCipher` encrypts access and refresh tokens before a store writes
them (Fernet: AES-128-CBC with HMAC-SHA256) with the key(s) of
``SYNCBRIDGE_TOKEN_KEY``.  Several keys, comma-separated, rotate: the first
encrypts, every one decrypts.  The in-memory store keeps tokens in the process
only and encrypts nothing.
"""
from __future__ import annotations

import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from syncbridge.config import DEV_TOKEN_KEY, parse_token_keys
from syncbridge.ports import OAuthToken

# What a connection says when its stored token cannot be decrypted with the configured key(s).
UNREADABLE_TOKEN = ("the stored token cannot be decrypted with SYNCBRIDGE_TOKEN_KEY: set the key it was saved "
                    "with (keep an old key after the new one while rotating), or reconnect")


class UnreadableToken(Exception):
    """A stored token that none of the configured keys decrypts."""


class TokenCipher:
    """Encrypt tokens with the first key, decrypt with any (key rotation)."""

    def __init__(self, keys: str = DEV_TOKEN_KEY) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in parse_token_keys(keys)])

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """The token in ``stored``; UnreadableToken when no key fits (or it is not encrypted at all)."""
        try:
            return self._fernet.decrypt(stored.encode("utf-8")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise UnreadableToken(UNREADABLE_TOKEN) from None

    def readable(self, stored: str) -> bool:
        try:
            self.decrypt(stored)
        except UnreadableToken:
            return False
        return True


class MemoryTokenStore:
    """Keeps tokens in a dict; thread-safe."""

    def __init__(self) -> None:
        self._tokens: dict[str, OAuthToken] = {}
        self._status: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def load(self, provider: str) -> OAuthToken | None:
        with self._lock:
            token = self._tokens.get(provider)
            return None if token is None else OAuthToken(token.access_token, token.refresh_token, token.expires_at, dict(token.extra))

    def save(self, provider: str, token: OAuthToken) -> None:
        with self._lock:
            self._tokens[provider] = OAuthToken(token.access_token, token.refresh_token, token.expires_at, dict(token.extra))
            self._status[provider] = ("active", "")

    def set_status(self, provider: str, status: str, detail: str = "") -> None:
        with self._lock:
            self._status[provider] = (status, detail)

    def status(self, provider: str) -> tuple[str, str]:
        with self._lock:
            if provider not in self._status:
                return ("not_connected", "")
            return self._status[provider]
