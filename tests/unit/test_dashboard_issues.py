"""The Issues and Dead letters pages: views, permission rules, correction, bulk plan and job, issue states."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from syncbridge.handlers.dead_letters import ArrivedMessage, archive_dead_letter
from syncbridge.ports import CANCELLED, DEAD, DONE, INTERRUPTED, REPLAYED, dead_letter_cause
from tests.support.dashboard import Dashboard, csrf_token, post_form
from tests.support.issues import BROKEN_CAUSE, INVALID_EMAIL_CAUSE, seed
from tests.support.queues import take_all
from tests.support.waiting import wait_for


@pytest.fixture
def board(database_url, store, publisher) -> Dashboard:
    return Dashboard.build(database_url, store=store, publisher=publisher)


@pytest.fixture
def seeded(board, topology) -> dict[str, list[int]]:
    return seed(board.parts, topology, board.clock())


def text_of(answer) -> str:
    return answer.get_data(as_text=True)


def audit_actions(board) -> list[str]:
    return [entry.action for entry in board.parts.operators.audit_entries(limit=100)]


# ---------------------------------------------------------------- causes
@pytest.mark.parametrize(("kind", "reason", "cause"), [
    ("rejected", "zoho 400 INVALID_DATA field=Email: invalid data", "rejected zoho INVALID_DATA field=Email"),
    ("rejected", "ameise 422 VALIDATION: Ort fehlt", "rejected ameise VALIDATION"),
    ("rejected", "syncbridge: no Kundennummer for Max Mustermann", "rejected syncbridge"),
    ("contract-violation", "contract CrmRecordChanged v1 violated: {'module': ['Missing data.']}",
     "contract-violation"),
    ("delivery_limit", "delivery limit exceeded; last error: zoho 503: down", "delivery_limit"),
])
def test_a_cause_is_kind_system_code_and_field_without_the_message_text(kind, reason, cause):
    assert dead_letter_cause(kind, reason) == cause


# ---------------------------------------------------------------- dead letters: list, filter, detail
def test_the_list_shows_dead_letters_and_filters_by_text_posted_never_in_the_url(board, seeded):
    client = board.signed_in("viewer")
    page = text_of(client.get("/dead-letters"))
    assert "4 matches" in page and all(f"#{i}<" in page for i in seeded["invalid_email"] + seeded["broken"])
    answer = post_form(client, "/dead-letters", "/dead-letters/filter", {"text": "4150868000000999000"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/dead-letters"
    page = text_of(client.get("/dead-letters"))
    assert "1 match" in page and f"#{seeded['broken'][0]}<" in page
    assert f"#{seeded['invalid_email'][0]}<" not in page
    post_form(client, "/dead-letters", "/dead-letters/filter", {"reset": "1"})
    assert "4 matches" in text_of(client.get("/dead-letters"))


def test_a_bad_filter_is_refused_with_its_reason(board, seeded):
    client = board.signed_in("viewer")
    post_form(client, "/dead-letters", "/dead-letters/filter", {"since": "yesterday"})
    page = text_of(client.get("/dead-letters"))
    assert "The filter cannot be used: since must be an ISO 8601 date" in page and "4 matches" in page


def test_a_message_is_shown_in_full_and_escaped(board, topology):
    body = b'{"note": "<script>alert(1)</script>"}'
    letter_id = archive_dead_letter(board.parts.dead_letter_ops.letters, topology, ArrivedMessage(
        "crm.contacts.changed", body, "application/json", "m-1", {"x-error-kind": "rejected", "x-error": "why",
                                                                   "x-custom": "<b>kept</b>"}))
    page = text_of(board.signed_in("viewer").get(f"/dead-letters/{letter_id}"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "&lt;b&gt;kept&lt;/b&gt;" in page and "why" in page


def test_a_body_that_is_not_text_is_shown_as_base64(board, topology):
    letter_id = archive_dead_letter(board.parts.dead_letter_ops.letters, topology, ArrivedMessage(
        "crm.contacts.changed", b"\xff\xfe\x00", "application/octet-stream", None, {}))
    page = text_of(board.signed_in("viewer").get(f"/dead-letters/{letter_id}"))
    assert "not text: shown as base64" in page and "//4A" in page


def test_an_unknown_dead_letter_is_404(board):
    assert board.signed_in("viewer").get("/dead-letters/999").status_code == 404


# ---------------------------------------------------------------- permissions
def test_a_viewer_sees_no_action_and_every_action_is_refused(board, seeded):
    client = board.signed_in("viewer")
    letter = seeded["invalid_email"][0]
    assert "Replay" not in text_of(client.get(f"/dead-letters/{letter}"))
    assert "Replay all matches" not in text_of(client.get("/dead-letters"))
    assert "Acknowledge" not in text_of(client.get("/issues/issue", query_string={"cause": INVALID_EMAIL_CAUSE}))
    token = csrf_token(text_of(client.get("/dead-letters")))
    for action, data in [(f"/dead-letters/{letter}/replay", {}), (f"/dead-letters/{letter}/discard", {}),
                         (f"/dead-letters/{letter}/correct", {"body": "{}"}), ("/dead-letters/plan", {"action": "replay"}),
                         ("/dead-letters/jobs", {"action": "replay"}), ("/dead-letters/jobs/1/cancel", {}),
                         ("/issues/move", {"cause": INVALID_EMAIL_CAUSE, "move": "acknowledge"})]:
        assert client.post(action, data={"csrf_token": token, **data}).status_code == 403, action
    assert board.parts.dead_letter_ops.get(letter).state == DEAD


def test_an_action_without_its_csrf_token_is_refused(board, seeded):
    client = board.signed_in("operator")
    answer = client.post(f"/dead-letters/{seeded['invalid_email'][0]}/replay")
    assert answer.status_code == 400


# ---------------------------------------------------------------- one dead letter: replay, discard, correct
def test_an_operator_replays_one_dead_letter_and_it_is_audited(board, seeded, topology):
    client = board.signed_in("operator")
    letter = seeded["invalid_email"][0]
    answer = post_form(client, f"/dead-letters/{letter}", f"/dead-letters/{letter}/replay")
    assert answer.status_code == 303
    assert "Done: replayed." in text_of(client.get(answer.headers["Location"]))
    assert board.parts.dead_letter_ops.get(letter).state == REPLAYED
    [message] = take_all(topology.crm_to_ameise)
    assert message.body == board.parts.dead_letter_ops.get(letter).body
    entry = board.parts.operators.audit_entries(limit=1)[0]
    assert (entry.actor, entry.action, entry.target) == ("operator", "dead_letter.replayed", f"dead letter {letter}")


def test_a_message_failing_its_contract_stays_dead_with_the_reason(board, seeded, topology):
    client = board.signed_in("operator")
    letter = seeded["broken"][0]
    answer = post_form(client, f"/dead-letters/{letter}", f"/dead-letters/{letter}/replay")
    assert "Not done (refused): contract CrmRecordChanged v1 violated" in text_of(client.get(answer.headers["Location"]))
    assert board.parts.dead_letter_ops.get(letter).state == DEAD and take_all(topology.crm_to_ameise) == []


def test_an_operator_discards_with_a_note(board, seeded):
    client = board.signed_in("operator")
    letter = seeded["invalid_email"][1]
    post_form(client, f"/dead-letters/{letter}", f"/dead-letters/{letter}/discard", {"note": "Dublette"})
    stored = board.parts.dead_letter_ops.get(letter)
    assert (stored.state, stored.discarded_by, stored.note) == ("discarded", "operator", "Dublette")
    assert "dead_letter.discarded" in audit_actions(board)


def test_a_correction_is_checked_kept_beside_the_original_audited_and_replayed(board, seeded, topology):
    client = board.signed_in("operator")
    letter_id = seeded["broken"][0]
    original = board.parts.dead_letter_ops.get(letter_id).body
    page = f"/dead-letters/{letter_id}"

    answer = post_form(client, page, f"{page}/correct", {"body": "{not json"})
    assert answer.status_code == 400 and "The corrected message is not JSON" in text_of(answer)
    still_broken = json.loads(original)
    answer = post_form(client, page, f"{page}/correct", {"body": json.dumps(still_broken)})
    assert answer.status_code == 400 and "The correction was not kept: contract CrmRecordChanged" in text_of(answer)
    assert board.parts.dead_letter_ops.get(letter_id).corrected_body is None

    fixed = {**still_broken, "module": "Contacts"}
    answer = post_form(client, page, f"{page}/correct", {"body": json.dumps(fixed, indent=2)})
    assert answer.status_code == 303
    letter = board.parts.dead_letter_ops.get(letter_id)
    assert letter.body == original and json.loads(letter.corrected_body) == fixed
    assert letter.corrected_by == "operator" and letter.state == DEAD
    entry = board.parts.operators.audit_entries(limit=1)[0]
    assert entry.action == "dead_letter.corrected"
    assert entry.details["original"] == {"body": still_broken} and entry.details["corrected"] == {"body": fixed}
    shown = text_of(client.get(page))
    assert "Corrected message (a replay publishes this)" in shown and "Replay the corrected message" in shown

    post_form(client, page, f"{page}/replay")
    [message] = take_all(topology.crm_to_ameise)
    assert json.loads(message.body) == fixed
    assert board.parts.dead_letter_ops.get(letter_id).state == REPLAYED


# ---------------------------------------------------------------- bulk: plan, job, cancel
def test_the_plan_counts_every_match_per_queue_and_the_contract_failures(board, seeded):
    client = board.signed_in("operator")
    answer = post_form(client, "/dead-letters", "/dead-letters/plan", {"action": "replay"})
    page = text_of(answer)
    assert answer.status_code == 200
    assert 'class="plan-total">4<' in page and "Queue crm-to-ameise" in page and 'class="plan-refused">1<' in page
    assert "Start: Replay 4 dead letters" in page
    assert all(board.parts.dead_letter_ops.get(i).state == DEAD for ids in seeded.values() for i in ids)


def test_a_bulk_replay_of_an_issue_runs_as_a_job_and_acts_on_every_match(board, seeded, topology):
    board.parts.bulk_jobs.page = 2          # more matches than one page of ids
    client = board.signed_in("operator")
    plan = text_of(post_form(client, "/issues", "/dead-letters/plan",
                             {"action": "replay", "cause": INVALID_EMAIL_CAUSE}))
    assert 'class="plan-total">3<' in plan and 'class="plan-refused">0<' in plan
    answer = client.post("/dead-letters/jobs", data={"csrf_token": csrf_token(plan), "action": "replay",
                                                     "cause": INVALID_EMAIL_CAUSE})
    assert answer.status_code == 303
    job_id = int(answer.headers["Location"].rsplit("/", 1)[1])
    job = wait_for(lambda: (j := board.parts.bulk_jobs.job(job_id)) and j.finished and j, what="the job to finish")
    assert (job.state, job.total, job.done, job.succeeded, job.failed) == (DONE, 3, 3, 3, 0)
    assert len(take_all(topology.crm_to_ameise)) == 3
    assert board.parts.dead_letter_ops.get(seeded["broken"][0]).state == DEAD
    progress = client.get(f"/dead-letters/jobs/{job_id}", headers={"HX-Request": "true"})
    assert 'class="job-done">3 / 3<' in text_of(progress) and "hx-get" not in text_of(progress)
    assert {"dead_letters.bulk_replay", "dead_letters.bulk_replay_finished"} <= set(audit_actions(board))


def test_a_cancelled_job_stops_before_the_next_dead_letter(board, seeded):
    bulk = board.parts.bulk_jobs
    job = bulk.start("discard", {"cause": INVALID_EMAIL_CAUSE}, by="operator")
    client = board.signed_in("operator")
    page = text_of(client.get(f"/dead-letters/jobs/{job.id}"))
    assert "Cancel the job" in page and "hx-get" in page          # an unfinished job polls its progress
    post_form(client, f"/dead-letters/jobs/{job.id}", f"/dead-letters/jobs/{job.id}/cancel")
    finished = bulk.run(job.id)
    assert (finished.state, finished.done) == (CANCELLED, 0)
    assert all(board.parts.dead_letter_ops.get(i).state == DEAD for i in seeded["invalid_email"])
    assert "dead_letters.bulk_cancelled" in audit_actions(board)


def test_a_job_whose_process_ended_reads_as_interrupted(board, seeded):
    bulk = board.parts.bulk_jobs
    job = bulk.start("replay", {"cause": INVALID_EMAIL_CAUSE}, by="operator")
    assert bulk.job(job.id).state == "queued"
    board.clock.advance(180)
    assert bulk.job(job.id).state == INTERRUPTED


# ---------------------------------------------------------------- issues
def test_issues_group_dead_letters_by_cause_with_counts_and_times(board, seeded):
    page = text_of(board.signed_in("viewer").get("/issues"))
    assert INVALID_EMAIL_CAUSE in page and BROKEN_CAUSE in page
    issue = board.parts.issues.get(INVALID_EMAIL_CAUSE)
    assert (issue.count, issue.dead, issue.state) == (3, 3, "open")
    assert issue.first_seen == board.clock() - timedelta(minutes=10)
    assert issue.last_seen == board.clock() - timedelta(minutes=8)


def test_an_issue_lists_its_dead_letters_and_the_events_of_their_records(board, seeded):
    client = board.signed_in("operator")
    letter = seeded["invalid_email"][0]
    post_form(client, f"/dead-letters/{letter}", f"/dead-letters/{letter}/discard")
    page = text_of(client.get("/issues/issue", query_string={"cause": INVALID_EMAIL_CAUSE}))
    assert all(f"#{i}<" in page for i in seeded["invalid_email"]) and f"#{seeded['broken'][0]}<" not in page
    assert "dead_letter_discarded" in page            # the activity log of its record


def test_an_issue_is_acknowledged_resolved_and_reopens_when_it_recurs(board, seeded, topology):
    client = board.signed_in("operator")
    issue_page = "/issues/issue?cause=" + INVALID_EMAIL_CAUSE.replace(" ", "+").replace("=", "%3D")
    for move in ("acknowledge", "resolve"):
        answer = post_form(client, issue_page, "/issues/move", {"cause": INVALID_EMAIL_CAUSE, "move": move})
        assert answer.status_code == 303
        board.clock.advance(60)
    issue = board.parts.issues.get(INVALID_EMAIL_CAUSE)
    assert (issue.state, issue.acknowledged_by, issue.resolved_by) == ("resolved", "operator", "operator")
    assert "resolved" in text_of(client.get("/issues?state=resolved"))
    answer = post_form(client, issue_page, "/issues/move", {"cause": INVALID_EMAIL_CAUSE, "move": "acknowledge"})
    assert "cannot be changed that way now" in text_of(client.get(answer.headers["Location"]))

    seed(board.parts, topology, board.clock() + timedelta(minutes=20), invalid_email=1, broken=0)
    recurred = board.parts.issues.get(INVALID_EMAIL_CAUSE)
    assert board.parts.issues.all("open").count(recurred) == 1
    assert "recurred" in text_of(client.get(issue_page))
    assert [a for a in audit_actions(board) if a.startswith("issue.")] == ["issue.resolve", "issue.acknowledge"]


def test_an_unknown_issue_is_404(board):
    client = board.signed_in("operator")
    assert client.get("/issues/issue", query_string={"cause": "nothing"}).status_code == 404
    assert post_form(client, "/issues", "/issues/move", {"cause": "nothing", "move": "resolve"}).status_code == 404


def test_both_pages_speak_german(board, seeded):
    client = board.signed_in("operator", language="de")
    assert "Fehler nach Ursache" in text_of(client.get("/issues"))
    page = text_of(client.get("/dead-letters"))
    assert "Alle Treffer erneut senden" in page and "4 Treffer" in page


def test_the_cli_and_admin_api_show_a_kept_correction_beside_the_original(board, seeded):
    from syncbridge.handlers.dead_letters import as_json

    letter_id = seeded["broken"][0]
    original = json.loads(board.parts.dead_letter_ops.get(letter_id).body)
    fixed = {**original, "module": "Contacts"}
    _letter, problem = board.parts.dead_letter_ops.correct(letter_id, json.dumps(fixed).encode(), by="cli:ops")
    shown = as_json(board.parts.dead_letter_ops.get(letter_id), full=True)
    assert problem is None and shown["body"] == original
    assert shown["corrected"] == {"body": fixed} and shown["corrected_by"] == "cli:ops"
