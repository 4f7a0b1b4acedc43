"""The dashboard beside the Zoho and Ameise simulators, for the Connections page's view and browser tests."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from simulators.ameise import AmeiseState, create_ameise_app
from simulators.server import ServerThread
from simulators.stack import free_port
from simulators.zoho import ZohoState, create_zoho_app
from tests.support.dashboard import Dashboard

# Values of secret settings that must never appear on a page.
SECRETS = {"zoho_client_secret": "zoho-client-secret-XYZ", "ameise_client_secret": "ameise-client-secret-XYZ",
           "zoho_refresh_token": "1000.zoho-refresh-secret", "dashboard_secret_key": "dashboard-key-secret-XYZ",
           "metrics_token": "metrics-token-secret-XYZ", "admin_token": "admin-token-secret-XYZ"}


@dataclass
class ConnectionsStack:
    """Zoho and Ameise simulators on ports of 127.0.0.1 and the dashboard configured for them."""

    board: Dashboard
    zoho: ZohoState
    ameise: AmeiseState
    servers: list[ServerThread]
    dashboard_url: str

    @classmethod
    def start(cls, database_url: str, store, *, real_time: bool = False) -> ConnectionsStack:
        zoho_state, ameise_state = ZohoState(), AmeiseState()
        zoho_state.register_client("dash-zoho-client", SECRETS["zoho_client_secret"])
        ameise_state.add_client("dash-ameise-client", SECRETS["ameise_client_secret"])
        zoho_refresh = zoho_state.issue_refresh_token("dash-zoho-client", SECRETS["zoho_refresh_token"])
        zoho = ServerThread(create_zoho_app(zoho_state)).start()
        ameise = ServerThread(create_ameise_app(ameise_state)).start()
        dashboard_url = f"http://127.0.0.1:{free_port()}"
        board = Dashboard.build(
            database_url, store=store, real_time=real_time,
            zoho_accounts_url=zoho.url, zoho_client_id="dash-zoho-client",
            zoho_client_secret=SECRETS["zoho_client_secret"], zoho_refresh_token=zoho_refresh,
            ameise_auth_url=ameise.url, ameise_api_url=ameise.url + "/service/bd/employee/1.0/rest",
            ameise_client_id="dash-ameise-client", ameise_client_secret=SECRETS["ameise_client_secret"],
            dashboard_url=dashboard_url, dashboard_secret_key=SECRETS["dashboard_secret_key"],
            metrics_token=SECRETS["metrics_token"], admin_token=SECRETS["admin_token"],
        )
        return cls(board, zoho_state, ameise_state, [zoho, ameise], dashboard_url)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def consent(location: str) -> str:
    """Open an authorize URL as a browser would and return where the server sends it back (path and query)."""
    answer = requests.get(location, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return f"{back.path}?{back.query}"
