"""Wire the service together in one place; nothing here runs at import time.

The web app (:func:`web_app`, gunicorn's app factory), each worker
(:func:`run_worker`) and the CLI's commands are built here: settings in,
ready-built objects out.  Tests pass fakes for any of them.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from kombu import Connection

from producers.topology import Topology, topology_for
from producers.transport import rabbitmq_connection
from syncbridge.config import WORKERS, Settings
from syncbridge.errors import SchemaOutdated
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise
from syncbridge.handlers.dead_letters import DeadLetterOps
from syncbridge.handlers.preflight import PreflightDependencies, PreflightReport, record_preflight, run_preflight
from syncbridge.mapping import Mapping, load_mapping
from syncbridge.ports import (
    AMEISE_TO_CRM,
    CHECK_PURPOSE,
    CRM_TO_AMEISE,
    LINK_PURPOSE,
    SWEEP_PURPOSE,
    AmeiseClient,
    AmeiseConnection,
    CreditLedger,
    CrmClient,
    DeadLetterStore,
    Publisher,
    Store,
)

if TYPE_CHECKING:
    from flask import Flask

    from syncbridge.adapters.ameise import AmeiseOAuth
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.adapters.db.sql import SqlStore

log = logging.getLogger(__name__)



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


from syncbridge.monitoring import init_sentry  # noqa: E402 - run_worker starts Sentry through it


def database_revision(settings: Settings) -> str | None:
    """The migration revision of the database."""
    from syncbridge.adapters.db import migrate as migrations

    return migrations.current(settings.database_url)


def database_up_to_date(settings: Settings) -> bool:
    """Whether the database has every migration of the code."""
    from syncbridge.adapters.db import migrate as migrations

    return migrations.is_up_to_date(settings.database_url)


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (the release step)."""
    from syncbridge.adapters.db import migrate as migrations

    migrations.upgrade(settings.database_url, revision)


def build_dead_letter_ops(settings: Settings, *, store: SqlStore | None = None, publisher: Publisher | None = None,
                          topology: Topology | None = None, migrate: bool | None = None) -> DeadLetterOps:
    """The dead-letter operations on the service's database (a publisher and topology to replay)."""
    from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore

    store = store if store is not None else build_store(settings, migrate=migrate)
    return DeadLetterOps(SqlDeadLetterStore(store.engine), store, publisher=publisher, topology=topology)


def build_store(settings: Settings, *, migrate: bool | None = None) -> SqlStore:
    """The SQL store; migrates a development database, refuses an outdated production one."""
    from syncbridge.adapters.db import migrate as migrations
    from syncbridge.adapters.db.sql import SqlStore

    if not migrations.is_up_to_date(settings.database_url):
        if migrate if migrate is not None else not settings.production:
            migrations.upgrade(settings.database_url, token_key=settings.token_key)
            log.info("database migrated to %s", migrations.current(settings.database_url))
        else:
            raise SchemaOutdated("the database schema is not up to date: run `syncbridge db upgrade`")
    return SqlStore.from_url(settings.database_url, token_key=settings.token_key)


def broker_connection(settings: Settings) -> Connection:
    """A broker connection for consumers (not connected until used)."""
    if settings.embedded_broker:
        # The in-process transport polls; a short interval keeps the demo snappy.
        return Connection(settings.effective_broker_url, transport_options={"polling_interval": 0.05})
    return rabbitmq_connection(settings.effective_broker_url, heartbeat=30, connect_timeout=5)


def build_publisher(settings: Settings, topology: Topology):
    """The publisher of the configured broker: RabbitMQ's with confirms, or the in-process broker's own."""
    if settings.embedded_broker:
        from producers.memory import MemoryPublisher

        return MemoryPublisher(topology, settings.effective_broker_url)
    from producers.publisher import Publisher

    return Publisher(settings.effective_broker_url, topology, confirm_timeout=settings.publish_timeout)


@dataclass
class Services:
    """The built objects of one process."""

    settings: Settings
    topology: Topology
    store: Store
    publisher: Publisher
    crm: CrmClient
    ameise: AmeiseClient
    ameise_oauth: AmeiseOAuth | None
    mapping: Mapping
    # On the store's database; None beside an in-memory store, which keeps no DailyUp and no dead letters.
    dailyup: SqlDailyUpStore | None = None
    dead_letters: DeadLetterStore | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def sync_dependencies(self) -> SyncDependencies:
        s = self.settings
        return SyncDependencies(
            crm=self.crm,
            ameise=self.ameise,
            store=self.store,
            mapping=self.mapping,
            module_entities=s.zoho_modules,
            kundennummer_field=s.zoho_field_kundennummer,
            vertragsnummer_field=s.zoho_field_vertragsnummer,
            default_vermittler=s.ameise_vermittler,
            # On the service's database the store writes the echo marks (the DailyUp store's table) with the
            # record's outcome, in its transaction.
            echoes=self.store if self.dailyup is not None else None,
            coalesce_margin=s.coalesce_margin,
            lock_ttl=s.record_lease,
            lock_wait=min(30.0, s.record_lease),
            deleted=self._deleted_records(),
            deleted_policy=s.sweep_deleted,
        )

    def _deleted_records(self):
        """The list of records deleted in the CRM, on the store's database (None beside an in-memory store)."""
        from syncbridge.adapters.db.sql import SqlStore
        from syncbridge.adapters.db.sweep import SqlSweepState

        return SqlSweepState(self.store.engine) if isinstance(self.store, SqlStore) else None

    def preflight_dependencies(self) -> PreflightDependencies:
        s = self.settings
        return PreflightDependencies(
            crm=self.crm,
            store=self.store,
            mapping=self.mapping,
            module_entities=s.zoho_modules,
            kundennummer_field=s.zoho_field_kundennummer,
            vertragsnummer_field=s.zoho_field_vertragsnummer,
            status_field=s.zoho_field_ameise_status if s.dailyup_delete_mode == "mark" else "",
            vermittler=s.ameise_vermittler,
            ameise=self.ameise if isinstance(self.ameise, AmeiseConnection) else None,
            lookups=self.dailyup,
        )

    def require_dailyup(self) -> SqlDailyUpStore:
        """The DailyUp store; the DailyUp needs the service's SQL database."""
        if self.dailyup is None:
            raise RuntimeError("the DailyUp needs the service's SQL database, not an in-memory store")
        return self.dailyup

    def importer(self, progress=None):
        """A DailyUp importer that publishes through this process's publisher."""
        from syncbridge.dailyup.importer import DailyUpImporter

        return DailyUpImporter(self.require_dailyup(), publisher=self.publisher, topology=self.topology,
                               reader_options=self.settings.dailyup_reader_options, progress=progress)

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
    credit_flush_every: float = 0.0,
    shared_zoho_limit: bool = False,
) -> Services:
    """Build every object of the service from settings; given objects are used as they are.

    ``credit_flush_every``: the Zoho API credits are summed in memory and written at most this
    often (seconds; 0: each call's at once), and what is held when the services close.
    ``shared_zoho_limit``: on PostgreSQL, SYNCBRIDGE_ZOHO_SYNC_CONCURRENCY limits the Zoho calls
    in flight of all the processes built so (the sync workers) together, not of each.
    """
    from syncbridge.adapters.ameise import AmeiseClient as HttpAmeiseClient
    from syncbridge.adapters.ameise import AmeiseOAuth
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.adapters.http import LimitedSession
    from syncbridge.adapters.zoho import CreditCounter, ZohoClient

    settings = settings or Settings.from_env()
    topology = topology_for(settings)
    closers: list[Callable[[], None]] = []
    store = store or build_store(settings)
    if publisher is None:
        publisher = build_publisher(settings, topology)
        closers.append(publisher.close)
    # Sessions for a worker's many threads: a kept-alive connection each, and Zoho's calls limited.
    if crm is None:
        ledger: CreditLedger | CreditCounter | None = credit_ledger(store)
        if ledger is not None and credit_flush_every > 0:
            # Summed in memory and written once a while; what is held is written when the service closes.
            ledger = CreditCounter(ledger, flush_every=credit_flush_every)
            closers.append(ledger.flush)
        crm = ZohoClient.from_settings(settings, store.tokens, ledger=ledger, session=LimitedSession(
            pool=settings.sync_concurrency, limit=settings.zoho_sync_concurrency,
            slots=shared_zoho_slots(settings, store, closers) if shared_zoho_limit else None))
    if ameise is None:
        ameise_oauth = ameise_oauth or AmeiseOAuth.from_settings(settings, store.tokens)
        ameise = HttpAmeiseClient(ameise_oauth, api_url=settings.ameise_api_url, timeout=settings.http_timeout,
                                  session=LimitedSession(pool=settings.sync_concurrency))
    return Services(
        settings=settings,
        topology=topology,
        store=store,
        publisher=publisher,
        crm=crm,
        ameise=ameise,
        ameise_oauth=ameise_oauth,
        mapping=mapping or load_mapping(settings.mapping_file or None),
        dailyup=SqlDailyUpStore(store.engine) if isinstance(store, SqlStore) else None,
        dead_letters=SqlDeadLetterStore(store.engine) if isinstance(store, SqlStore) else None,
        closers=closers,
    )


def shared_zoho_slots(settings: Settings, store: Store, closers: list[Callable[[], None]]):
    """Zoho's concurrent-call limit shared by the processes on the store's PostgreSQL database (None: not PostgreSQL).

    Zoho limits the calls in flight per org and app, whichever process makes them; on SQLite
    (one machine, development) each process keeps its own limit.
    """
    from syncbridge.adapters.db.call_slots import CallSlots

    engine = getattr(store, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        return None
    slots = CallSlots.for_engine(engine, settings.zoho_sync_concurrency, name=f"zoho-calls:{settings.namespace}")
    closers.append(slots.close)
    return slots.start()


def build_dailyup(settings: Settings, *, migrate: bool | None = None):
    """The DailyUp store, drop folder and reader options, for the CLI and the admin API."""
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.dailyup.intake import DropFolder

    store = build_store(settings, migrate=migrate)
    return SqlDailyUpStore(store.engine), DropFolder.at(settings.dailyup_dir), settings.dailyup_reader_options


@contextmanager
def bootstrap_dailyup(settings: Settings, *, publish: bool, progress=None, migrate: bool | None = None):
    """An importer and the drop folder for one command; publishing only to a real broker.

    The in-process broker lives only as long as this process, so with it the
    deltas stay in the outbox for a worker that shares a broker to publish.
    """
    from producers.publisher import Publisher
    from syncbridge.dailyup.importer import DailyUpImporter

    store, folder, options = build_dailyup(settings, migrate=migrate)
    publisher = None
    if publish and not settings.embedded_broker:
        topology = topology_for(settings)
        publisher = Publisher(settings.effective_broker_url, topology, confirm_timeout=settings.publish_timeout)
    try:
        yield DailyUpImporter(store, publisher=publisher, topology=getattr(publisher, "topology", None),
                              reader_options=options, progress=progress), folder
    finally:
        if publisher is not None:
            publisher.close()


def dailyup_worker(services: Services):
    """The DailyUp worker: drop folder, daily watch, outbox publishing."""
    from syncbridge.dailyup.intake import DailyUpWorker, DropFolder
    from syncbridge.ports import AMEISE_TO_CRM, ActivityEntry

    settings = services.settings
    dailyup = services.require_dailyup()

    def received_on(day) -> bool:
        return any(i.delivered_on == day and i.state != "rejected" for i in dailyup.imports(limit=50))

    def ever_received() -> bool:
        return any(i.state != "rejected" for i in dailyup.imports(limit=50))

    def on_missing(day) -> None:
        message = f"no DailyUp delivery for {day:%d.%m.%Y} by {settings.dailyup_at:%H:%M} UTC"
        log.warning(message)
        services.store.log(ActivityEntry(direction=AMEISE_TO_CRM, action="delivery_missing", result="error",
                                         error=message))

    def progress(stage: str, done: int, total: int | None) -> None:
        log.info("DailyUp %s: %s%s", stage, done, f"/{total}" if total else "")

    return DailyUpWorker(services.importer(progress=progress), DropFolder.at(settings.dailyup_dir),
                         poll_seconds=settings.dailyup_poll_seconds, at=settings.dailyup_at,
                         received_on=received_on, on_missing=on_missing, ever_received=ever_received)


def web_app(settings: Settings | None = None, *, publisher: Any = None,
            checks: dict[str, Callable[[], None]] | None = None) -> Flask:
    """The webhook receiver with its uploads and admin API: gunicorn's ``'syncbridge.bootstrap:web_app()'``.

    The receiver starts and queues events without the database; the admin API and
    the DailyUp routes open it on first use and never migrate it (an outdated
    schema answers 503 until ``syncbridge db upgrade`` has run).
    """
    from webhooks import create_app

    settings = settings or Settings.from_env()
    # An injected publisher brings its own topology: publish where it declared.
    topology = getattr(publisher, "topology", None) or topology_for(settings)
    if publisher is None:
        publisher = build_publisher(settings, topology)
    return create_app(
        settings,
        publisher=publisher,
        topology=topology,
        checks=checks if checks is not None else web_checks(settings, publisher),
        dead_letters=lambda: build_dead_letter_ops(settings, publisher=publisher, topology=topology, migrate=False),
        dailyup=lambda: build_dailyup(settings, migrate=False),
    )


def web_checks(settings: Settings, publisher) -> dict[str, Callable[[], None]]:
    """Readiness checks of the receiver: broker and database reachable."""
    store_holder: list[Store] = []

    def database() -> None:
        if not store_holder:
            # Imported on the first check: the receiver starts (and queues events) without the SQL stack loaded.
            from syncbridge.adapters.db.sql import SqlStore

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
        prefetch_count=services.settings.prefetch_count,
        concurrency=services.settings.sync_concurrency,
        handler_logs_attempt=True,      # a delivery's log entry is written with the record's outcome
    )


def ameise_to_crm_consumer(services: Services, connection: Connection | None = None):
    """The return-path consumer: DailyUp deltas into Zoho upserts of up to 100 records."""
    from consumers.ameise_to_crm import AmeiseToCrmConsumer
    from syncbridge.config import ENTITY_KINDS
    from syncbridge.handlers import ReturnDependencies, sync_ameise_records_to_crm

    s = services.settings
    deps = ReturnDependencies(
        crm=services.crm, snapshot=services.require_dailyup(), store=services.store, mapping=services.mapping,
        modules={kind: s.module_for(kind) for kind in ENTITY_KINDS},
        kundennummer_field=s.zoho_field_kundennummer, vertragsnummer_field=s.zoho_field_vertragsnummer,
        status_field=s.zoho_field_ameise_status, delete_mode=s.dailyup_delete_mode, batch_size=s.dailyup_batch_size,
        guard=link_guard(services),
    )
    return AmeiseToCrmConsumer(
        connection or broker_connection(s), services.topology, partial(sync_ameise_records_to_crm, deps=deps),
        services.publisher, services.store,
        batch_size=s.dailyup_batch_size, batch_wait=s.dailyup_batch_wait, prefetch_count=s.prefetch_count,
    )


def dead_letter_archiver(services: Services, connection: Connection | None = None):
    """The archiver: every message of the dead-letter queue into the dead_letters table, for ops."""
    from consumers.dead_letter_archive import DeadLetterArchiver
    from syncbridge.handlers.dead_letters import archive_dead_letter

    letters = services.dead_letters
    if letters is None:
        raise RuntimeError("the dead-letter archive needs the service's SQL database, not an in-memory store")
    return DeadLetterArchiver(
        connection or broker_connection(services.settings), services.topology,
        partial(archive_dead_letter, letters, services.topology), prefetch_count=services.settings.prefetch_count,
    )


def build_worker(name: str, services: Services, connection: Connection | None = None):
    """A worker (a kombu ConsumerMixin) by its name."""
    if name == "crm-to-ameise":
        return crm_to_ameise_consumer(services, connection)
    if name == "ameise-to-crm":
        return ameise_to_crm_consumer(services, connection)
    if name == "dailyup":
        return dailyup_worker(services)
    if name == "dead-letters":
        return dead_letter_archiver(services, connection)
    if name == "sweep":
        return sweep_worker(services, connection)
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


# A worker writes its Zoho API credits once a second, not once per call (a crash loses at most that second's).
CREDIT_FLUSH_S = 1.0

# The direction whose preflight check a worker waits for before it consumes.
WORKER_DIRECTIONS = {"crm-to-ameise": str(CRM_TO_AMEISE), "ameise-to-crm": str(AMEISE_TO_CRM)}


def preflight(services: Services, directions: tuple[str, ...] | None = None) -> PreflightReport:
    """Run the preflight check (``syncbridge check``) of ``directions`` (default: both)."""
    deps = services.preflight_dependencies()
    with_purpose = getattr(deps.crm, "with_purpose", None)
    if with_purpose is not None:    # the check's calls count as its own, not as the sync's
        deps.crm = with_purpose(CHECK_PURPOSE)
    return run_preflight(deps) if directions is None else run_preflight(deps, directions)


def wait_for_preflight(services: Services, direction: str, stop: threading.Event, *,
                       interval: float | None = None, wait: Callable[[float], object] | None = None) -> bool:
    """Block until the preflight check of ``direction`` passes (its messages wait in their queue meanwhile).

    Re-checks every ``interval`` seconds (SYNCBRIDGE_PREFLIGHT_INTERVAL); each change
    of the outcome is written to the activity log, where `syncbridge status` reads it.
    ``wait`` (default ``stop.wait``) is the pause between two checks.  False when stopped first.
    """
    interval = services.settings.preflight_interval if interval is None else interval
    wait = wait or stop.wait
    while not stop.is_set():
        report = preflight(services, (direction,))
        try:
            record_preflight(services.store, direction, report)
        except Exception:  # noqa: BLE001 - the log is for the status; the check's outcome still decides
            log.warning("could not record the preflight state of %s", direction, exc_info=True)
        if report.passes(direction):
            log.info("preflight of %s passed", direction)
            return True
        log.warning("%s paused: preflight failing: %s; messages wait in the queue, checked again in %.0f s",
                    direction, "; ".join(f.line() for f in report.blocking(direction)), interval)
        wait(interval)
    return False


def run_after_preflight(run: Callable[[], None], services: Services, direction: str, stop: threading.Event) -> None:
    """Call ``run`` (a worker's loop) once the preflight check of ``direction`` passes (the dev stack's threads)."""
    if wait_for_preflight(services, direction, stop) and not stop.is_set():
        run()


def direction_paused(services: Services, direction: str) -> Callable[[], bool]:
    """Whether the operators have paused ``direction`` (the dashboard's flag in the store); the last answer when the database is away."""
    from syncbridge.adapters.db.operators import SqlOperatorStore

    engine = getattr(services.store, "engine", None)
    if engine is None:
        return lambda: False          # an in-memory store keeps no pause flags
    operators = SqlOperatorStore(engine)
    last = [False]

    def paused() -> bool:
        try:
            last[0] = direction in operators.paused_directions()
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop or start a worker
            log.warning("cannot read the pause flag of %s: %s", direction, exc)
        return last[0]

    return paused


def run_unless_paused(worker, name: str, paused: Callable[[], bool], stop: threading.Event,
                      interval: float = 2.0) -> None:
    """Consume while the worker's direction is not paused; paused, its messages wait in their queue.

    A pause is noticed within ``interval`` seconds: the message in hand is
    finished, the consumer leaves the broker (what it had prefetched but not
    acknowledged goes back to the queue, not to the dead letters), and it comes
    back when the direction is resumed.
    """
    while not stop.is_set():
        if paused():
            log.info("worker %s: its direction is paused by an operator; messages wait in the queue", name)
            while not stop.wait(interval) and paused():
                pass
            if stop.is_set():
                return
            log.info("worker %s: its direction was resumed", name)
        done = threading.Event()

        def watch() -> None:
            while not done.wait(interval):
                if stop.is_set() or paused():
                    worker.should_stop = True
                    return

        watcher = threading.Thread(target=watch, name=f"{name}-pause-watch", daemon=True)
        worker.should_stop = stop.is_set()
        watcher.start()
        try:
            worker.run()
        finally:
            done.set()
            watcher.join()


def run_worker(name: str, settings: Settings | None = None) -> None:
    """Run one worker until SIGTERM / SIGINT; in-flight work is finished first.

    The signal is honoured in every state: while waiting for Ameise, while the
    broker cannot be reached, between messages, and (once the message in hand is
    done) while processing.
    """
    settings = settings or Settings.from_env()
    configure_logging(settings)
    init_sentry(settings, f"worker:{name}")
    stop = threading.Event()
    workers: list = []

    def _stop(signum, frame):  # noqa: ARG001 - signal handler signature
        log.info("received signal %s: finishing in-flight work, then stopping", signum)
        stop.set()
        for worker in workers:
            worker.should_stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Migrating is the release step's (`syncbridge db upgrade`): a worker refuses an outdated database.
    services = bootstrap(settings, store=build_store(settings, migrate=False), credit_flush_every=CREDIT_FLUSH_S,
                         shared_zoho_limit=name in WORKER_DIRECTIONS)
    try:
        workers.append(build_worker(name, services))
        worker = workers[0]
        if stop.is_set():
            worker.should_stop = True
        ready = name != "crm-to-ameise" or wait_for_ameise(services, stop)
        if ready and name in WORKER_DIRECTIONS:
            ready = wait_for_preflight(services, WORKER_DIRECTIONS[name], stop)
        if ready:
            log.info("worker %s consuming from %s", name, settings.effective_broker_url.split("@")[-1])
            started = time.monotonic()
            if name in WORKER_DIRECTIONS:
                run_unless_paused(worker, name, direction_paused(services, WORKER_DIRECTIONS[name]), stop)
            else:
                worker.run()
            log.info("worker %s stopped after %.0f s", name, time.monotonic() - started)
    finally:
        services.close()


def connect_ameise_by_consent(services: Services):
    """Run the OAuth authorization-code flow against an Ameise that consents at once (the simulator): no browser."""
    import secrets
    from urllib.parse import parse_qs, urlsplit

    import requests

    state = secrets.token_urlsafe(16)
    answer = requests.get(services.ameise_oauth.authorization_url(state), allow_redirects=False, timeout=10)
    location = answer.headers.get("Location", "")
    query = parse_qs(urlsplit(location).query)
    if answer.status_code not in (302, 303) or query.get("state", [""])[0] != state or "code" not in query:
        raise RuntimeError(f"Ameise consent did not redirect back with a code ({answer.status_code} {location!r})")
    return services.ameise_oauth.exchange_code(query["code"][0])


# ---------------------------------------------------------------- the operator dashboard
def build_operators(settings: Settings, *, store: Store | None = None, migrate: bool | None = None, now=None):
    """The dashboard's users, sign-in limits and audit log on the service's database (passwords hashed by werkzeug)."""
    from werkzeug.security import check_password_hash, generate_password_hash

    from syncbridge.adapters.db.operators import SqlOperatorStore
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.handlers.operators import LoginLimits, Operators

    store = store if store is not None else build_store(settings, migrate=migrate)
    if not isinstance(store, SqlStore):
        raise RuntimeError("the dashboard's users need the service's SQL database, not an in-memory store")
    limits = LoginLimits(per_account=settings.dashboard_login_attempts,
                         per_address=settings.dashboard_login_attempts_per_address,
                         window=settings.dashboard_login_window)
    extra = {"now": now} if now is not None else {}
    return Operators(SqlOperatorStore(store.engine), hash_password=generate_password_hash,
                     check_password=check_password_hash, limits=limits, **extra)


def dashboard_parts(settings: Settings, *, store: Store | None = None, migrate: bool | None = False, now=None,
                    publisher: Publisher | None = None):
    """What the dashboard's pages call: users and audit log, the Overview's sources, dead letters and issues."""
    from dashboard import DashboardParts
    from producers.depths import queue_depths
    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
    from syncbridge.adapters.db.events import SqlActivityLog
    from syncbridge.adapters.db.issues import SqlIssueStore
    from syncbridge.handlers.overview import OverviewSources

    store = store if store is not None else build_store(settings, migrate=migrate)
    operators = build_operators(settings, store=store, now=now)
    engine = store.engine  # type: ignore[attr-defined] - build_operators has checked it is a SqlStore

    def connect() -> Connection:
        if settings.embedded_broker:
            return broker_connection(settings)
        return rabbitmq_connection(settings.effective_broker_url, connect_timeout=2)

    sources = OverviewSources(tokens=store.tokens, operators=operators.store, dead_letters=SqlDeadLetterStore(engine),
                              imports=SqlDailyUpStore(engine),
                              queue_depths=partial(queue_depths, connect, topology_for(settings)),
                              activity=SqlActivityLog(engine), issues=SqlIssueStore(engine),
                              credits=credit_ledger(store), credit_budget=settings.zoho_daily_credits)
    if now is not None:
        sources.now = now
    dashboard = DashboardParts(operators=operators, overview_sources=sources,
                               connections=build_connections(settings, store, operators.store),
                               metrics=partial(metrics_exposition, sources.queue_depths),
                               events=_event_sources(settings, store, engine),
                               **_dashboard_dead_letters(settings, store, operators, now=now, publisher=publisher))
    _add_imports_and_statistics(dashboard, settings, store, engine, now)
    dashboard.linking = build_linking(settings, store=store, now=now)
    return dashboard


def _event_sources(settings: Settings, store: Store, engine):
    """What the Events and Record timeline pages read: the activity log and saved views on the service's database."""
    from syncbridge.adapters.db.events import SqlActivityLog
    from syncbridge.handlers.events import EventSources

    log_ = SqlActivityLog(engine)
    return EventSources(log=log_, views=log_, store=store, ameise_portal_url=settings.ameise_portal_url,
                        zoho_accounts_url=settings.zoho_accounts_url)


def _add_imports_and_statistics(dashboard, settings: Settings, store: Store, engine, now) -> None:
    """The Imports page's DailyUp (a dry-running importer, the drop folder) and the Statistics page's sources."""
    from pathlib import Path

    from syncbridge.adapters.db.dailyup import SqlDailyUpStore
    from syncbridge.dailyup.importer import DailyUpImporter
    from syncbridge.dailyup.intake import DropFolder
    from syncbridge.handlers.imports import ImportsDesk
    from syncbridge.handlers.statistics import StatisticsSources

    dailyup = SqlDailyUpStore(engine)
    options = settings.dailyup_reader_options
    clock = {"now": now} if now is not None else {}
    dashboard.imports = ImportsDesk(dailyup, DropFolder(Path(settings.dailyup_dir)),    # made on first use
                                    DailyUpImporter(dailyup, reader_options=options),
                                    dashboard.operators.store, reader_options=options,
                                    max_upload_bytes=settings.dailyup_max_upload_bytes, **clock)
    dashboard.statistics = StatisticsSources(counts=store, log=store, **clock)  # type: ignore[arg-type]


def _dashboard_dead_letters(settings: Settings, store: Store, operators, *, now=None,
                            publisher: Publisher | None = None) -> dict[str, Any]:
    """The Dead letters and Issues pages' parts: replay publishes through a publisher made on first use."""
    from syncbridge.adapters.db.dead_letters import SqlDeadLetterStore
    from syncbridge.adapters.db.issues import SqlIssueStore, SqlJobStore
    from syncbridge.handlers.issues import BulkJobs, Issues

    engine = store.engine  # type: ignore[attr-defined] - a SqlStore (build_operators checked it)
    topology = getattr(publisher, "topology", None) or topology_for(settings)
    lazy = publisher if publisher is not None else _LazyPublisher(lambda: build_publisher(settings, topology))
    ops = DeadLetterOps(SqlDeadLetterStore(engine), store, publisher=lazy, topology=topology)
    clock = {"now": now} if now is not None else {}
    return {"dead_letter_ops": ops, "activity": store,
            "issues": Issues(SqlIssueStore(engine), operators, **clock),
            "bulk_jobs": BulkJobs(ops, SqlJobStore(engine), operators, **clock)}


class _LazyPublisher:
    """A publisher connected on its first message, so the dashboard starts without the broker."""

    def __init__(self, build: Callable[[], Publisher]) -> None:
        self._build = build
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def _get(self) -> Publisher:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._build()
            return self._publisher

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        return self._get().publish(*args, **kwargs)

    def publish_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._get().publish_many(*args, **kwargs)


def build_connections(settings: Settings, store: Store, operators):
    """The Connections page's sources: the same OAuth adapters the workers and the CLI use, called back on the dashboard."""
    from syncbridge.adapters.ameise import AmeiseOAuth
    from syncbridge.adapters.zoho import ZohoClient
    from syncbridge.handlers.connections import ConnectionSources

    callback = settings.dashboard_url.rstrip("/") + "/connections/{}/callback"
    connectors = {
        "zoho": ZohoClient.from_settings(settings, store.tokens, redirect_uri=callback.format("zoho"),
                                         ledger=credit_ledger(store), purpose=CHECK_PURPOSE),
        "ameise": AmeiseOAuth.from_settings(settings, store.tokens, redirect_uri=callback.format("ameise")),
    }
    return ConnectionSources(connectors=connectors, tokens=store.tokens, operators=operators, settings=settings)


def metrics_exposition(queue_depths=None) -> tuple[bytes, str]:
    """The metrics of every process of this host in Prometheus' text format, with the queue depths of now."""
    from syncbridge.metrics import exposition

    return exposition(queue_depths)


def dashboard_app(settings: Settings | None = None, *, parts=None) -> Flask:
    """The operator dashboard, a web process of its own: gunicorn's ``'syncbridge.bootstrap:dashboard_app()'``.

    It never migrates the database: an outdated schema stops it at start (``syncbridge db upgrade`` first).
    """
    from dashboard import create_app

    settings = settings or Settings.from_env()
    if not logging.getLogger().handlers:    # under gunicorn nothing else configures logging
        configure_logging(settings)
    init_sentry(settings, "dashboard")      # no request bodies, cookies or addresses (syncbridge.monitoring)
    return create_app(settings, parts if parts is not None else dashboard_parts(settings))


def credit_ledger(store: Store) -> CreditLedger | None:
    """The Zoho API credit ledger on the store's database (an in-memory store keeps its own), counted for Prometheus."""
    from syncbridge.adapters.db.credits import SqlCreditLedger
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.metrics import CountedCreditLedger

    ledger: CreditLedger | None = SqlCreditLedger(store.engine) if isinstance(store, SqlStore) \
        else getattr(store, "credits", None)
    return CountedCreditLedger(ledger) if ledger is not None else None


# ---------------------------------------------------------------- catch-up sweep and backfill
def sweep_interval(settings: Settings) -> float | None:
    """Seconds between two catch-up sweeps; None when the sweep is off."""
    return None if settings.sweep_minutes == "off" else float(settings.sweep_minutes) * 60


def sweep_dependencies(services: Services, *, should_stop: Callable[[], bool] = lambda: False,
                       sleep: Callable[[float], Any] = time.sleep, progress=None, state=None, ledger=None,
                       purpose: str = SWEEP_PURPOSE):
    """What the sweep and the backfill need: the CRM, the sweep's state, the publisher, the credit throttle.

    The CRM client counts its calls under ``purpose`` (sweep or backfill), which the throttle reads back.
    """
    from syncbridge.adapters.zoho import ZohoClient
    from syncbridge.handlers.sweep import BulkThrottle, SweepDependencies

    s = services.settings
    if state is None:
        from syncbridge.adapters.db.sweep import SqlSweepState

        engine = getattr(services.store, "engine", None)
        if engine is None:
            raise RuntimeError("the sweep needs the service's SQL database, not an in-memory store")
        state = SqlSweepState(engine)
    throttle = BulkThrottle(ledger if ledger is not None else credit_ledger(services.store),
                            daily_credits=s.zoho_daily_credits,
                            share=s.bulk_credit_share, concurrency=s.zoho_concurrency,
                            sleep=sleep, should_stop=should_stop)
    crm = services.crm.with_purpose(purpose) if isinstance(services.crm, ZohoClient) else services.crm
    return SweepDependencies(
        crm=crm, state=state, store=services.store, publisher=services.publisher,
        topology=services.topology, modules=list(s.zoho_modules), throttle=throttle, overlap=s.sweep_overlap,
        coalesce_margin=s.coalesce_margin, deleted_policy=s.sweep_deleted, should_stop=should_stop,
        progress=progress,
    )


def sweep_worker(services: Services, connection: Connection | None = None, *, state=None):
    """The sweep worker: a catch-up sweep every SYNCBRIDGE_SWEEP_MINUTES (idle when off)."""
    from consumers.sweep import SweepWorker
    from syncbridge.handlers.sweep import run_sweep

    worker = SweepWorker(connection or broker_connection(services.settings), lambda: run_sweep(deps),
                         interval=sweep_interval(services.settings))
    deps = sweep_dependencies(services, should_stop=lambda: worker.should_stop, sleep=worker.pause, state=state)
    return worker


def build_sweep_state(settings: Settings, *, migrate: bool | None = False):
    """The sweep's state (watermarks, backfill, deleted records, leases) on the service's database."""
    from syncbridge.adapters.db.sweep import SqlSweepState

    return SqlSweepState(build_store(settings, migrate=migrate).engine)


# ---------------------------------------------------------------- first-time linking
def link_guard(services: Services):
    """The return path's guard against creating a second CRM record for a customer with an unlinked twin."""
    from syncbridge.adapters.db.linking import SqlLinkingStore
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.handlers.linking import LinkGuard

    s = services.settings
    if not s.link_guard or not isinstance(services.store, SqlStore):
        return None
    return LinkGuard(SqlLinkingStore(services.store.engine), services.mapping,
                     kundennummer_field=s.zoho_field_kundennummer, vertragsnummer_field=s.zoho_field_vertragsnummer)


def build_linking(settings: Settings, *, store: Store | None = None, crm: CrmClient | None = None,
                  migrate: bool | None = False, now=None):
    """First-time linking on the service's database and the CRM (`syncbridge link`, the Linking page)."""
    from syncbridge.adapters.db.linking import SqlLinkingStore
    from syncbridge.adapters.db.sql import SqlStore
    from syncbridge.adapters.zoho import ZohoClient
    from syncbridge.config import ENTITY_KINDS
    from syncbridge.handlers.linking import Linking

    store = store if store is not None else build_store(settings, migrate=migrate)
    if not isinstance(store, SqlStore):
        raise RuntimeError("first-time linking needs the service's SQL database, not an in-memory store")
    modules = {kind: module for kind in ENTITY_KINDS if (module := _module_or_none(settings, kind))}
    extra = {"now": now} if now is not None else {}
    return Linking(crm=crm or ZohoClient.from_settings(
                       settings, store.tokens, ledger=credit_ledger(store), purpose=LINK_PURPOSE), links=store,
                   proposals=SqlLinkingStore(store.engine), mapping=load_mapping(settings.mapping_file or None),
                   modules=modules, kundennummer_field=settings.zoho_field_kundennummer,
                   vertragsnummer_field=settings.zoho_field_vertragsnummer, **extra)


def _module_or_none(settings: Settings, kind: str) -> str | None:
    from syncbridge.config import ConfigError

    try:
        return settings.module_for(kind)
    except ConfigError:
        return None
