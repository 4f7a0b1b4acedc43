"""In-memory token store, for tests and for single-process runs."""
from __future__ import annotations

import threading

from clients.interfaces import OAuthToken


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
