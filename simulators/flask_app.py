"""The Flask app class of the simulators."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask


class SimulatorFlask(Flask):
    """A Flask app that tells once per view or hook whether it is a coroutine function, not on every request.

    Flask asks :meth:`ensure_sync` for each view and each request hook every time it calls one; the
    answer for a function never changes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync_functions: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync_functions[func]
        except KeyError:
            sync = self._sync_functions[func] = super().ensure_sync(func)
            return sync
        except TypeError:   # an unhashable callable
            return super().ensure_sync(func)
