"""German and English: the browser's Accept-Language picks, the switch in the layout overrides it (a cookie).

The translations are kept as ``.po`` files in git (``dashboard/translations/<lang>/LC_MESSAGES/messages.po``)
and compiled in memory when the app is built: no ``.mo`` file is committed or installed.
English is the language of the source text, so it has no catalog.
"""
from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Blueprint, current_app, redirect, request, url_for
from flask_babel import Babel, Domain, get_locale

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"         # the people using it are German insurance brokers
COOKIE = "syncbridge_lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

bp = Blueprint("i18n", __name__)


def compile_catalogs(directory: Path = TRANSLATIONS) -> dict[str, Translations]:
    """Every ``<lang>/LC_MESSAGES/messages.po`` below ``directory``, compiled in memory."""
    catalogs: dict[str, Translations] = {}
    for po in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
        language = po.parent.parent.name
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=language)
        compiled = io.BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        catalogs[language] = Translations(fp=compiled)
    return catalogs


class CompiledDomain(Domain):
    """Flask-Babel's message domain, served from catalogs compiled at start instead of ``.mo`` files."""

    def __init__(self, catalogs: dict[str, Translations]) -> None:
        super().__init__()
        self.catalogs = catalogs

    def get_translations(self) -> Translations | NullTranslations:
        locale = get_locale()
        if locale is None:
            return NullTranslations()
        return self.catalogs.get(locale.language) or NullTranslations()


class CompiledBabel(Babel):
    def __init__(self, domain: CompiledDomain, **kwargs) -> None:
        self._compiled = domain
        super().__init__(**kwargs)

    @property
    def domain_instance(self) -> Domain:  # type: ignore[override]
        return self._compiled


def select_language() -> str:
    """The language of this request: the switch's cookie, else the browser's preference, else German."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or DEFAULT_LANGUAGE


def init_i18n(app) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", "Europe/Berlin")
    CompiledBabel(CompiledDomain(compile_catalogs()), app=app, locale_selector=select_language)
    app.register_blueprint(bp)

    @app.context_processor
    def languages():
        return {"languages": LANGUAGES, "current_language": str(get_locale() or DEFAULT_LANGUAGE)}


@bp.post("/language")
def set_language():
    """Remember the chosen language in a cookie and go back to the page it was chosen on."""
    from dashboard.auth import _local

    language = request.form.get("language", "")
    target = _local(request.form.get("next")) or url_for("overview.index")
    response = redirect(target)
    if language in LANGUAGES:
        response.set_cookie(COOKIE, language, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                            secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response
