"""The whole service in one process, with the simulators of Zoho CRM and Ameise.

``syncbridge run`` uses this for the no-account demo, and the end-to-end tests use
it against a real RabbitMQ: the code paths are those of production (receiver,
broker, consumer, HTTP clients, OAuth), only the URLs point at the simulators.
"""
from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from producers.topology import declare
from simulators.ameise import AmeiseState, create_ameise_app
from simulators.ameise import seed_demo as seed_ameise_demo
from simulators.server import ServerThread
from simulators.zoho import ZohoState, create_zoho_app
from simulators.zoho import seed_demo as seed_zoho_demo
from syncbridge.bootstrap import (
    WORKER_DIRECTIONS,
    Services,
    bootstrap,
    broker_connection,
    build_store,
    build_worker,
    connect_ameise_by_consent,
    dashboard_app,
    dashboard_parts,
    direction_paused,
    preflight,
    run_after_preflight,
    run_unless_paused,
    sweep_interval,
    web_app,
)
from syncbridge.config import Settings
from syncbridge.handlers.preflight import record_preflight

log = logging.getLogger(__name__)

AMEISE_API_PATH = "/service/bd/employee/1.0/rest"
DEMO_VERMITTLER = "A1B2C3"
# The dev stack's dashboard sign-in (a throwaway database; never a real one).
DEMO_LOGIN = ("demo", "demo-passwort")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """Receiver, workers and both simulators, running in this process."""

    settings: Settings
    services: Services
    zoho_state: ZohoState
    ameise_state: AmeiseState
    zoho: ServerThread
    ameise: ServerThread
    receiver: ServerThread
    workers: list = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    demo_ids: dict = field(default_factory=dict)
    dashboard: ServerThread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)   # ends a worker's wait for its preflight

    def stop(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.should_stop = True
        for thread in self.threads:
            thread.join(timeout=10)
        for server in (self.receiver, self.zoho, self.ameise, self.dashboard):
            if server is not None:
                server.stop()
        self.services.close()


def start_stack(
    settings: Settings,
    *,
    receiver_port: int = 0,
    zoho_port: int = 0,
    ameise_port: int = 0,
    workers: int = 1,
    seed: bool = True,
    webhook_style: str = "form",
    migrate: bool = True,
    dashboard_port: int | None = None,
    zoho_state: ZohoState | None = None,
) -> Stack:
    """Start simulators, receiver and workers; register Zoho workflow webhooks at the receiver.

    ``migrate`` brings the database up to date (a database of the stack's own);
    without it an outdated database is refused (SchemaOutdated).  A ``dashboard_port``
    (0: any free one) starts the dashboard too, with the admin :data:`DEMO_LOGIN`.  ``zoho_state``
    is the simulated CRM to use (e.g. with a field changed before the workers start).
    """
    zoho_state, ameise_state = zoho_state or ZohoState(), AmeiseState()
    demo_ids = {}
    if seed:
        demo_ids["zoho"] = seed_zoho_demo(zoho_state)
        demo_ids["ameise"] = seed_ameise_demo(ameise_state)
    zoho = ServerThread(create_zoho_app(zoho_state), port=zoho_port).start()
    ameise = ServerThread(create_ameise_app(ameise_state), port=ameise_port).start()
    receiver_port = receiver_port or free_port()
    if dashboard_port is not None:
        dashboard_port = dashboard_port or free_port()
    settings = settings.with_overrides(
        zoho_accounts_url=zoho.url,
        zoho_api_url="",
        ameise_auth_url=ameise.url,
        ameise_api_url=ameise.url + AMEISE_API_PATH,
        ameise_portal_url=ameise.url,              # the simulator serves the portal's record pages too
        ameise_vermittler=settings.ameise_vermittler or DEMO_VERMITTLER,
        public_url=f"http://127.0.0.1:{receiver_port}",
        **({"dashboard_url": f"http://127.0.0.1:{dashboard_port}"} if dashboard_port is not None else {}),
    )
    try:
        services = bootstrap(settings, store=build_store(settings, migrate=migrate))
    except BaseException:
        zoho.stop()
        ameise.stop()
        raise
    with broker_connection(settings) as connection:
        # Declared before anything is published, so no early event is unroutable.
        declare(connection, services.topology)
    connect_ameise_by_consent(services)

    app = web_app(settings, publisher=services.publisher)
    receiver = ServerThread(app, port=receiver_port).start()
    stack = Stack(settings, services, zoho_state, ameise_state, zoho, ameise, receiver, demo_ids=demo_ids)
    if dashboard_port is not None:
        stack.dashboard = _start_dashboard(settings, services, dashboard_port)
        # A reconnect from the dashboard's Connections page shows Ameise's consent page, as the real one does.
        ameise_state.consent_page = True
    names = ["crm-to-ameise"] * workers + ["ameise-to-crm", "dailyup", "dead-letters"]
    if sweep_interval(settings) is not None:
        names.append("sweep")          # the catch-up sweep, when SYNCBRIDGE_SWEEP_MINUTES is on
    passed: dict[str, bool] = {}      # the first check of each direction
    for index, name in enumerate(names):
        worker = build_worker(name, services)
        # A sync direction consumes once its preflight check passes, and while an operator has not paused it;
        # its messages wait in the queue till then.  The first check runs here, so a direction that passes is
        # consuming when the stack is returned.
        direction = WORKER_DIRECTIONS.get(name)
        run = worker.run
        if direction is not None:
            run = partial(run_unless_paused, worker, name, direction_paused(services, direction), stack.stopping, 0.5)
            if direction not in passed:
                report = preflight(services, (direction,))
                record_preflight(services.store, direction, report)
                passed[direction] = report.passes(direction)
            if not passed[direction]:
                run = partial(run_after_preflight, run, services, direction, stack.stopping)
        thread = threading.Thread(target=run, name=f"{name}-{index}", daemon=True)
        stack.workers.append(worker)
        stack.threads.append(thread)
        thread.start()
    for module in settings.zoho_modules:
        if webhook_style == "notify":
            # Notification API channels post to one URL and carry their own token.
            zoho_state.add_webhook(module, f"{receiver.url}/webhooks/zoho/notify", style="notify",
                                   token=settings.zoho_notify_token)
        else:
            zoho_state.add_webhook(module, f"{receiver.url}/webhooks/zoho/{module}", style=webhook_style,
                                   token=settings.zoho_webhook_token)
    if seed and dashboard_port is not None:
        _demo_events(zoho_state, demo_ids["zoho"])
    return stack


def _demo_events(zoho_state: ZohoState, ids: dict[str, str]) -> None:
    """Something for the dashboard's Events page from the start: a user saves Erika and her contract unchanged."""
    for module, name in (("Contacts", "Erika Mustermann"), ("Deals", "Wohngebäude Mustermann")):
        record = zoho_state.get(module, ids[name]) or {}
        field = "Phone" if module == "Contacts" else "Stage"
        try:
            zoho_state.user_update(module, ids[name], {field: record.get(field)})
        except Exception:  # noqa: BLE001 - demo data only: the stack runs without it
            log.warning("the demo edit of %s could not be made", name, exc_info=True)


def deliver_demo_dailyup(stack: Stack) -> Path:
    """Put Ameise's DailyUp of today into the drop folder's inbox, as blau direkt's FTP push does.

    The DailyUp worker imports it and the return path brings its changes to the CRM,
    so the dashboard's Imports and Statistics pages have something real to show.
    """
    import io

    from syncbridge.dailyup.intake import DropFolder

    name, data = stack.ameise_state.dailyup()
    path, _, _ = DropFolder.at(stack.settings.dailyup_dir).save_upload(
        io.BytesIO(data), name, max_bytes=stack.settings.dailyup_max_upload_bytes)
    return path


def add_demo_failure(stack: Stack) -> str:
    """A CRM contact Ameise refuses (a German PLZ of four digits): the demo's dead letter, shown as an issue.

    Fixing the PLZ in the CRM and replaying the dead letter from the dashboard syncs it.
    """
    record_id = stack.zoho_state.user_create("Contacts", {
        "Salutation": "Herr", "First_Name": "Paul", "Last_Name": "Fehler", "Email": "paul.fehler@example.de",
        "Mailing_Street": "Ringstraße 3", "Mailing_Zip": "5067", "Mailing_City": "Köln",
        "Mailing_Country": "Deutschland"})
    stack.demo_ids.setdefault("zoho", {})["Paul Fehler"] = record_id
    return record_id


def _start_dashboard(settings: Settings, services: Services, port: int) -> ServerThread:
    """The dashboard on the stack's database, with the demo admin."""
    parts = dashboard_parts(settings, store=services.store)
    username, password = DEMO_LOGIN
    if parts.operators.find(username) is None:
        parts.operators.create(username, password, "admin", by="syncbridge run")
    return ServerThread(dashboard_app(settings, parts=parts), port=port).start()
