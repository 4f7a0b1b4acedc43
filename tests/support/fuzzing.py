"""One knob for every fuzz test's length, and the events its statistics count.

The tests run a modest number of examples; ``bench/fuzz.py`` runs the very same
tests with ``SYNCBRIDGE_FUZZ_SCALE`` set (e.g. 20) and reads hypothesis'
statistics, where :func:`outcome` shows up as counted events.
"""
from __future__ import annotations

import os

from hypothesis import currently_in_test_context, event

SCALE_VARIABLE = "SYNCBRIDGE_FUZZ_SCALE"


def scale() -> float:
    """The factor on every fuzz test's example count (1 unless ``SYNCBRIDGE_FUZZ_SCALE`` says otherwise)."""
    raw = os.environ.get(SCALE_VARIABLE, "1").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{SCALE_VARIABLE} must be > 0, got {raw!r}")
    return value


def examples(count: int) -> int:
    """``count`` examples, scaled."""
    return max(1, round(count * scale()))


def outcome(label: str) -> None:
    """Count one example's outcome (an HTTP status, "rows", "rejected", ...) in the statistics."""
    if currently_in_test_context():  # the same checks also serve plain parametrized tests
        event(f"outcome {label}")
