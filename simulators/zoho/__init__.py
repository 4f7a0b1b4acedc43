"""A runnable simulator of Zoho CRM: OAuth server, records API, search, workflow webhooks.

It speaks Zoho's wire formats (https://www.zoho.com/crm/developer/docs/api/v7/),
quirks included: a bad refresh token answers HTTP 200 ``{"error":"invalid_code"}``,
record ids are 19-digit strings, writes answer per record and only skip workflow
rules when the body carries ``"trigger": []``.

Build it with :func:`create_zoho_app`, or register the :data:`zoho_api` blueprint
(``simulators.zoho.routes``) on an app of your own; the state is
``app.config["ZOHO_STATE"]`` (a :class:`ZohoState`); the field metadata it checks
writes against is seeded from ``simulators.zoho.fields``.  Tests and the demo drive the state directly in Python or
through the unauthenticated admin API under ``/_sim``.  Run it alone with
``python -m simulators.zoho --port 8101 --demo``."""
from simulators.zoho.app import create_zoho_app
from simulators.zoho.criteria import CriteriaError
from simulators.zoho.demo import seed_demo
from simulators.zoho.routes import zoho_api
from simulators.zoho.state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
    SimulatorInputError,
    ZohoState,
)

__all__ = ["CriteriaError", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "DEFAULT_REFRESH_TOKEN", "SimulatorInputError", "ZohoState", "create_zoho_app", "seed_demo", "zoho_api"]
