"""Statistics: per entity and day, what was created, changed, deleted or failed in each direction; the latest records."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, render_template, request
from flask_babel import format_date, lazy_gettext
from flask_babel import gettext as _

from dashboard.pages import NavEntry, Page
from dashboard.parts import parts
from syncbridge.handlers.statistics import DEFAULT_RANGE, KINDS, RANGES, Series, kind_of, statistics

bp = Blueprint("statistics", __name__, url_prefix="/statistics")
page = Page(bp, nav=(NavEntry("statistics.index", lazy_gettext("Statistics")),))

# The chart's drawing area (SVG user units; the SVG scales to the width it is given).
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 220, 44, 28, 10


@dataclass(frozen=True)
class Segment:
    kind: str
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    series: Series
    bars: tuple[Segment, ...]
    ticks: tuple[tuple[float, str], ...]        # x, day label
    scale: tuple[tuple[float, int], ...]        # y, count
    width: int = WIDTH
    height: int = HEIGHT


def kind_label(kind: str) -> str:
    return {"created": _("created"), "changed": _("changed"), "deleted": _("deleted"), "failed": _("failed")}[kind]


def entity_label(entity: str) -> str:
    return {"customer": _("Customers"), "contract": _("Contracts")}.get(entity, entity)


def direction_label(direction: str) -> str:
    return {"crm_to_ameise": _("Zoho CRM → Ameise"), "ameise_to_crm": _("Ameise → Zoho CRM (DailyUp)")}.get(
        direction, direction)


def chart(series: Series) -> Chart:
    """Stacked bars, one per day (created at the bottom, failed on top), each part with its own <title>."""
    days = len(series.days)
    slot = (WIDTH - LEFT) / max(days, 1)
    bar = max(slot * 0.7, 1.0)
    peak = max(series.peak, 1)
    area = HEIGHT - BOTTOM - TOP
    segments = []
    for index, (day, counts) in enumerate(series.days):
        x = LEFT + index * slot + (slot - bar) / 2
        bottom = float(HEIGHT - BOTTOM)
        for kind in KINDS:
            if not counts[kind]:
                continue
            height = area * counts[kind] / peak
            bottom -= height
            segments.append(Segment(kind, round(x, 2), round(bottom, 2), round(bar, 2), round(height, 2),
                                    f"{format_date(day, 'medium')}: {counts[kind]} {kind_label(kind)}"))
    every = max(1, -(-days // 5))              # at most five day labels
    ticks = tuple((round(LEFT + i * slot + slot / 2, 2), format_date(series.days[i][0], "d.M." if _is_de() else "M/d"))
                  for i in range(0, days, every))
    scale = tuple((round(HEIGHT - BOTTOM - area * value / peak, 2), value) for value in sorted({0, peak // 2, peak}))
    return Chart(series, tuple(segments), ticks, scale)


def _is_de() -> bool:
    from flask_babel import get_locale

    locale = get_locale()
    return locale is not None and locale.language == "de"


@bp.app_context_processor
def labels():
    return {"kind_label": kind_label, "entity_label": entity_label, "direction_label": direction_label,
            "record_kind": kind_of}


@bp.get("")
def index():
    sources = parts().statistics
    if sources is None:
        abort(404)
    days = request.args.get("days", DEFAULT_RANGE, type=int)
    if days not in RANGES:
        days = DEFAULT_RANGE
    data = statistics(sources, days=days)
    return render_template("pages/statistics/index.html", stats=data, charts=[chart(s) for s in data.series],
                           days=days, ranges=RANGES, kinds=KINDS)
