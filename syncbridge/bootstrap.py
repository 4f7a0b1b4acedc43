"""Wire the service together in one place; nothing here runs at import time.

``create_app()`` (webhooks) and each worker's ``main`` call into this module:
settings in, ready-built objects out.  Tests pass fakes for any of them.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from kombu import Connection

from clients.interfaces import AmeiseClient, CrmClient
from store.interfaces import Store
from syncbridge.config import Settings
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise
from syncbridge.mapping import Mapping, load_mapping
from syncbridge.topology import Topology, build_topology

log = logging.getLogger(__name__)

WORKERS = ("crm-to-ameise",)


def configure_logging(settings: Settings) -> None:
    """Log to stderr at the configured level, one line per record."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Every HTTP request of the simulators and receiver threads is noise at INFO,
    # and so are Alembic's plugin and dialect lines.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def init_sentry(settings: Settings, component: str) -> bool:
    """Start Sentry when a DSN is set; without one nothing is sent."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=settings.release or None,
        environment=settings.env,
        send_default_pii=False,
    )
    sentry_sdk.set_tag("component", component)
    return True


class SchemaOutdated(RuntimeError):
    """The database is behind the code's migrations and may not be migrated here."""


def build_store(settings: Settings, *, migrate: bool | None = None) -> Store:
    """The SQL store; migrates a development database, refuses an outdated production one."""
    from store import migrate as migrations
    from store.sql import SqlStore

    if not migrations.is_up_to_date(settings.database_url):
        if migrate if migrate is not None else not settings.production:
            migrations.upgrade(settings.database_url)
            log.info("database migrated to %s", migrations.current(settings.database_url))
        else:
            raise SchemaOutdated("the database schema is not up to date: run `syncbridge db upgrade`")
    return SqlStore.from_url(settings.database_url)


def broker_connection(settings: Settings) -> Connection:
    """A broker connection for consumers (not connected until used)."""
    if settings.embedded_broker:
        # The in-process transport polls; a short interval keeps the demo snappy.
        return Connection(settings.effective_broker_url, transport_options={"polling_interval": 0.05})
    return Connection(settings.effective_broker_url, heartbeat=30, connect_timeout=5)


@dataclass
class Services:
    """The built objects of one process."""

    settings: Settings
    topology: Topology
    store: Store
    publisher: object
    crm: CrmClient
    ameise: AmeiseClient
    ameise_oauth: object
    mapping: Mapping
    closers: list[Callable[[], None]] = field(default_factory=list)

    def sync_dependencies(self) -> SyncDependencies:
        s = self.settings
        return SyncDependencies(
            crm=self.crm,
            ameise=self.ameise,
            store=self.store,
            mapping=self.mapping,
            module_entities=s.module_entities,
            kundennummer_field=s.zoho_field_kundennummer,
            vertragsnummer_field=s.zoho_field_vertragsnummer,
            default_vermittler=s.ameise_vermittler,
        )

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("error while closing", exc_info=True)


def bootstrap(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    crm: CrmClient | None = None,
    ameise: AmeiseClient | None = None,
    ameise_oauth=None,
    publisher=None,
    mapping: Mapping | None = None,
) -> Services:
    """Build every object of the service from settings; given objects are used as they are."""
    from clients.ameise import AmeiseClient as HttpAmeiseClient
    from clients.ameise import AmeiseOAuth
    from clients.zoho import ZohoClient
    from producers.publisher import Publisher

    settings = settings or Settings.from_env()
    topology = build_topology(settings.namespace, settings.delivery_limit_int)
    closers: list[Callable[[], None]] = []
    store = store or build_store(settings)
    if publisher is None:
        publisher = Publisher(settings.effective_broker_url, topology, confirm_timeout=settings.publish_timeout_s)
        closers.append(publisher.close)
    crm = crm or ZohoClient.from_settings(settings, store.tokens)
    if ameise is None:
        ameise_oauth = ameise_oauth or AmeiseOAuth.from_settings(settings, store.tokens)
        ameise = HttpAmeiseClient(ameise_oauth, api_url=settings.ameise_api_url, timeout=settings.http_timeout_s)
    return Services(
        settings=settings,
        topology=topology,
        store=store,
        publisher=publisher,
        crm=crm,
        ameise=ameise,
        ameise_oauth=ameise_oauth,
        mapping=mapping or load_mapping(settings.mapping_file or None),
        closers=closers,
    )


def web_checks(settings: Settings, publisher) -> dict[str, Callable[[], None]]:
    """Readiness checks of the receiver: broker and database reachable."""
    from store.sql import SqlStore

    store_holder: list[Store] = []

    def database() -> None:
        if not store_holder:
            store_holder.append(SqlStore.from_url(settings.database_url))
        store_holder[0].ping()

    return {"broker": publisher.ping, "database": database}


def ensure_ameise_connected(services: Services) -> bool:
    """Whether an Ameise grant is stored; starts from SYNCBRIDGE_AMEISE_REFRESH_TOKEN when set."""
    if services.store.tokens.load("ameise") is not None:
        return True
    refresh_token = services.settings.ameise_refresh_token
    if refresh_token and services.ameise_oauth is not None:
        services.ameise_oauth.connect_with_refresh_token(refresh_token)
        return True
    return False


def crm_to_ameise_consumer(services: Services, connection: Connection | None = None):
    """The CRM -> Ameise consumer, wired to the handler."""
    from consumers.crm_to_ameise import CrmToAmeiseConsumer

    handle = partial(sync_crm_record_to_ameise, deps=services.sync_dependencies())
    return CrmToAmeiseConsumer(
        connection or broker_connection(services.settings),
        services.topology,
        handle,
        services.publisher,
        services.store,
        prefetch_count=services.settings.prefetch,
    )


def build_worker(name: str, services: Services, connection: Connection | None = None):
    """A worker (a kombu ConsumerMixin) by its name."""
    if name == "crm-to-ameise":
        return crm_to_ameise_consumer(services, connection)
    raise ValueError(f"unknown worker {name!r}; known: {', '.join(WORKERS)}")


def wait_for_ameise(services: Services, stop: threading.Event, interval: float = 5.0) -> bool:
    """Block until Ameise is connected (messages wait in the queue meanwhile)."""
    warned = False
    while not stop.is_set():
        if ensure_ameise_connected(services):
            return True
        if not warned:
            log.warning("Ameise is not connected: run `syncbridge connect ameise`; messages wait in the queue")
            warned = True
        stop.wait(interval)
    return False


def run_worker(name: str, settings: Settings | None = None) -> None:
    """Run one worker until SIGTERM / SIGINT; in-flight work is finished first."""
    settings = settings or Settings.from_env()
    configure_logging(settings)
    init_sentry(settings, f"worker:{name}")
    services = bootstrap(settings)
    stop = threading.Event()
    worker = build_worker(name, services)

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        log.info("received signal %s: finishing in-flight work, then stopping", signum)
        stop.set()
        worker.should_stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if wait_for_ameise(services, stop):
            log.info("worker %s consuming from %s", name, settings.effective_broker_url.split("@")[-1])
            started = time.monotonic()
            worker.run()
            log.info("worker %s stopped after %.0f s", name, time.monotonic() - started)
    finally:
        services.close()
