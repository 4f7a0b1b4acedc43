"""The catch-up sweep end to end: webhooks lost while the receiver was away, found by one sweep (RabbitMQ)."""
from __future__ import annotations

from tests.support.sweep_fault import outage_then_sweep

# A create is one write to Ameise, an edit of the phone two (the customer and its contact entry).
WRITES_WITHOUT_BURST = 40 + 2 * 20


def test_changes_whose_webhooks_were_lost_reach_ameise_after_one_sweep_once(make_stack):
    stack = make_stack(seed=False)

    figures = outage_then_sweep(stack, creates=40, edits=20, burst=False)

    print(f"\nsweep fault test: {figures}")
    assert figures["webhooks_lost"] == 60                 # the receiver saw none of them
    assert figures["sweep_queued"] == 60
    assert (figures["created_in_ameise"], figures["edited_in_ameise"]) == (40, 20)
    assert (figures["duplicates"], figures["dead_lettered"]) == (0, 0)
    assert figures["ameise_creates"] == 40 + 20           # the 20 edited ones were created before the outage
    assert figures["ameise_writes"] == WRITES_WITHOUT_BURST


def test_a_webhook_burst_for_the_same_records_during_the_sweep_does_not_double_the_writes(make_stack):
    stack = make_stack(seed=False)

    figures = outage_then_sweep(stack, creates=40, edits=20, burst=True)

    print(f"\nsweep fault test with a webhook burst: {figures}")
    assert figures["burst_events"] == 60
    assert (figures["created_in_ameise"], figures["edited_in_ameise"]) == (40, 20)
    assert (figures["duplicates"], figures["dead_lettered"]) == (0, 0)
    assert figures["ameise_creates"] == 40 + 20
    # 120 events for 60 records: the second of a record is coalesced when its sync had begun after it (less the
    # coalesce margin), so the burst adds writes but does not double them.
    assert WRITES_WITHOUT_BURST <= figures["ameise_writes"] < 2 * WRITES_WITHOUT_BURST
