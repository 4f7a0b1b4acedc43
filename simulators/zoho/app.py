"""The HTTP face of the simulated Zoho CRM: a Flask app serving the :mod:`simulators.zoho.routes` blueprint."""
from __future__ import annotations

import argparse
import logging

from flask import Flask

from simulators.flask_app import SimulatorFlask
from simulators.zoho.demo import seed_demo
from simulators.zoho.routes import zoho_api
from simulators.zoho.state import ZohoState

log = logging.getLogger(__name__)


def create_zoho_app(state: ZohoState | None = None) -> Flask:
    """Build the simulator's Flask app; its state is ``app.config["ZOHO_STATE"]``."""
    app = SimulatorFlask("simulators.zoho")
    app.config["ZOHO_STATE"] = state or ZohoState()
    app.register_blueprint(zoho_api)
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the simulator until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--demo", action="store_true", help="seed the demo records")
    parser.add_argument("--token-lifetime", type=int, default=3600)
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="API calls in flight at once beyond which a call answers 429 (default: no limit)")
    args = parser.parse_args(argv)
    state = ZohoState(token_lifetime=args.token_lifetime)
    state.max_concurrent = args.max_concurrent
    if args.demo:
        for name, record_id in seed_demo(state).items():
            print(f"{name}: {record_id}")
    create_zoho_app(state).run(host=args.host, port=args.port, threaded=True)
