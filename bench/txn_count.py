"""Database transactions the CRM -> Ameise handler runs per record: a create and an update, on SQLite.

Counts every transaction the store's engine begins (a SQLAlchemy ``begin`` listener) while
one CRM record is synced through the in-memory Zoho and Ameise fakes, wired as the worker is:
the DailyUp echo mark is noted by the store and written in the handler's last transaction.  Not
counted: what the worker adds around the handler — its delivery's log entry goes into the
handler's last transaction too, and the Zoho credits are written once a second, not per call.

    python bench/txn_count.py [--quick]     # a second either way; --quick prints the same keys

The last line: ``create_txn=N update_txn=N``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event  # noqa: E402

from simulators.ameise import seed_demo as seed_ameise  # noqa: E402
from simulators.fakes.ameise import InMemoryAmeise  # noqa: E402
from simulators.fakes.zoho import InMemoryZoho  # noqa: E402
from simulators.zoho import seed_demo as seed_zoho  # noqa: E402
from syncbridge.adapters.db import migrate  # noqa: E402
from syncbridge.adapters.db.sql import SqlStore  # noqa: E402
from syncbridge.handlers import SyncDependencies, sync_crm_record_to_ameise  # noqa: E402
from syncbridge.mapping import load_mapping  # noqa: E402
from syncbridge.messages import SyncCrmRecordToAmeise  # noqa: E402

MODULES = {"Contacts": "person", "Accounts": "company", "Deals": "contract"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the same run (it takes about a second)")
    parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/count.db"
        migrate.upgrade(url)
        store = SqlStore.from_url(url)
        zoho, ameise = InMemoryZoho(), InMemoryAmeise()
        ids = seed_zoho(zoho.state)
        seed_ameise(ameise.state)
        deps = SyncDependencies(crm=zoho, ameise=ameise, store=store, mapping=load_mapping(),
                                module_entities=MODULES, default_vermittler="A1B2C3", echoes=store)
        begun = [0]

        @event.listens_for(store.engine, "begin")
        def _count(_conn: object) -> None:
            begun[0] += 1

        counts = {}
        for name, event_id in (("create", "count-1"), ("update", "count-2")):
            begun[0] = 0
            result = sync_crm_record_to_ameise(SyncCrmRecordToAmeise("Contacts", ids["Max Neumann"], event_id), deps)
            counts[name] = begun[0]
            print(f"{name}: {result.action}, {begun[0]} transactions")
        store.engine.dispose()
    print(f"create_txn={counts['create']} update_txn={counts['update']}")


if __name__ == "__main__":
    main()
