"""Stripe webhooks (interface.md, "Numbers that come in by themselves"), through a real server.

Events are signed exactly as Stripe signs them: `Stripe-Signature: t=<unix>,v1=<hex>` with
hex(HMAC-SHA256(endpoint secret, "{t}.{raw body}")), computed here by hand, not by the library
the server verifies with.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.app.context import open_context
from bot.app.tokens import set_stripe_secret
from bot.cli import main
from storage import Store, open_store
from tests.conftest import at_once
from tests.test_api import TEAM, Reply, Server, running, stored
from tests.test_security import db_state

SECRET = "whsec_test_0123456789abcdef"
# 2026-03-11 03:30 UTC is still 2026-03-10 in New York
CREATED = int(datetime(2026, 3, 11, 3, 30, tzinfo=UTC).timestamp())
EVENING = date(2026, 3, 10)
_ids = itertools.count(1)


def sign(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(kind: str, obj: dict[str, Any], *, event_id: str | None = None,
          previous: dict[str, Any] | None = None, created: int = CREATED) -> bytes:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return json.dumps({
        "id": event_id or f"evt_{next(_ids):08d}", "object": "event", "api_version": "2026-10-28.endive",
        "created": created, "livemode": False, "type": kind,
        "request": {"id": None, "idempotency_key": None}, "data": data,
    }).encode()


def charge(amount: int, currency: str = "usd", **fields: Any) -> dict[str, Any]:
    return {"id": f"ch_{next(_ids)}", "object": "charge", "amount": amount,
            "amount_captured": amount, "amount_refunded": 0, "currency": currency,
            "customer": "cus_1", "created": CREATED, "status": "succeeded", "paid": True, **fields}


def subscription() -> dict[str, Any]:
    return {"id": f"sub_{next(_ids)}", "object": "subscription", "customer": "cus_1",
            "status": "active", "currency": "usd", "created": CREATED}


def deliver(srv: Server, payload: bytes, signature: str | None = None,
            team: str = TEAM) -> Reply:
    headers = {"Content-Type": "application/json; charset=utf-8",
               "Stripe-Signature": sign(payload) if signature is None else signature}
    if signature == "":
        del headers["Stripe-Signature"]
    return srv.call("POST", f"/webhooks/stripe/{team}", payload, headers)


def configure(store: Store, team: str = TEAM, currency: str = "USD") -> None:
    store.ensure_workspace(team, timezone="America/New_York")
    store.update_workspace(team, currency=currency)
    set_stripe_secret(open_context(store, team, "U0001", datetime.now(UTC)), SECRET)


@pytest.fixture
def srv(any_store: Store) -> Iterator[Server]:
    configure(any_store)
    with running(any_store) as server:
        yield server


# -- the four events ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "obj", "previous", "expected"), [
    ("charge.succeeded", charge(12345), None, [("cash_collected", 123.45)]),
    ("charge.succeeded", charge(5000, amount_captured=3000), None, [("cash_collected", 30.0)]),
    ("charge.refunded", charge(5000, amount_refunded=2000, refunded=False), {"amount_refunded": 0},
     [("refund_requests", 1.0), ("refunds", 20.0)]),
    ("customer.subscription.created", subscription(), None, [("new_customers", 1.0)]),
    ("customer.subscription.deleted", subscription(), None, [("customers_lost", 1.0)]),
])
def test_each_event_adds_to_its_metric_on_the_event_day_in_the_workspace_zone(
    srv: Server, kind: str, obj: dict[str, Any], previous: dict[str, Any] | None,
    expected: list[tuple[str, float]],
) -> None:
    reply = deliver(srv, event(kind, obj, previous=previous))
    assert reply.status == 200 and reply.json["stored"] == len(expected)
    assert stored(srv.store) == [(m, EVENING, v, "stripe", ()) for m, v in expected]
    assert {(h.origin, h.actor) for h in srv.store.history(TEAM, None, 10)} == {("stripe", "stripe")}
    assert srv.logged == [(TEAM, EVENING, {m for m, _ in expected})]


def test_events_add_up_rather_than_replace_and_partial_refunds_count_their_own_part(
    srv: Server,
) -> None:
    first = charge(10000)
    deliver(srv, event("charge.succeeded", first))
    deliver(srv, event("charge.succeeded", charge(2550)))
    deliver(srv, event("charge.refunded", {**first, "amount_refunded": 3000}, previous={"amount_refunded": 0}))
    deliver(srv, event("charge.refunded", {**first, "amount_refunded": 10000, "refunded": True},
                       previous={"amount_refunded": 3000}))
    assert stored(srv.store) == [("cash_collected", EVENING, 125.5, "stripe", ()),
                                 ("refund_requests", EVENING, 2.0, "stripe", ()),
                                 ("refunds", EVENING, 100.0, "stripe", ())]


@pytest.mark.parametrize(("currency", "amount", "value"), [
    ("JPY", 5000, 5000.0), ("KRW", 12000, 12000.0), ("CLP", 990, 990.0),
    ("KWD", 1230, 1.23), ("EUR", 1999, 19.99), ("HUF", 150000, 1500.0),
])
def test_amounts_are_converted_by_the_currency_minor_unit(
    store: Store, currency: str, amount: int, value: float
) -> None:
    configure(store, currency=currency)
    with running(store) as server:
        assert deliver(server, event("charge.succeeded", charge(amount, currency.lower()))).status == 200
    assert stored(store) == [("cash_collected", EVENING, value, "stripe", ())]


def test_a_charge_in_another_currency_is_refused_with_a_200_a_log_line_and_a_notice(
    srv: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kpibot")
    payload = event("charge.succeeded", charge(4200, "eur", id="ch_eur"))
    first, retry = deliver(srv, payload), deliver(srv, payload)
    assert first.status == retry.status == 200
    assert "EUR" in first.json["refused"] and "USD" in first.json["refused"]
    assert retry.json["duplicate"] is True
    assert stored(srv.store) == []
    [notice] = srv.store.notices(TEAM)
    assert notice.kind == "stripe_currency" and "ch_eur" in notice.message
    assert any("ch_eur" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    # a subscription in another currency is still a customer
    sub = {**subscription(), "currency": "eur"}
    assert deliver(srv, event("customer.subscription.created", sub)).json["stored"] == 1


def test_other_event_types_are_acknowledged_and_ignored(srv: Server) -> None:
    reply = deliver(srv, event("invoice.paid", {"id": "in_1"}))
    assert (reply.status, reply.json) == (200, {"ignored": "invoice.paid"})
    assert stored(srv.store) == []


# -- each event once --------------------------------------------------------------------------


def test_a_replayed_event_counts_once(srv: Server) -> None:
    payload = event("charge.succeeded", charge(1000), event_id="evt_replayed")
    assert deliver(srv, payload).json["stored"] == 1
    later = deliver(srv, payload, sign(payload, at=int(time.time()) + 5))
    assert (later.status, later.json) == (200, {"duplicate": True, "id": "evt_replayed"})
    assert stored(srv.store) == [("cash_collected", EVENING, 10.0, "stripe", ())]


def test_concurrent_retries_of_one_event_count_once(srv: Server) -> None:
    payload = event("charge.succeeded", charge(700), event_id="evt_race")

    def send() -> list[str]:
        reply = deliver(srv, payload)
        return [f"{reply.status} {'duplicate' if reply.json.get('duplicate') else 'stored'}"]

    answers = at_once(*([send] * 8))
    assert sorted(answers) == ["200 duplicate"] * 7 + ["200 stored"]
    assert stored(srv.store) == [("cash_collected", EVENING, 7.0, "stripe", ())]


# -- signatures -------------------------------------------------------------------------------


PAYLOAD = event("charge.succeeded", charge(100), event_id="evt_sig")


@pytest.mark.parametrize(("signature", "words"), [
    (sign(PAYLOAD, "whsec_someone_else"), "does not verify"),
    (sign(PAYLOAD, at=int(time.time()) - 301), "tolerance"),
    ("", "No Stripe-Signature header"),
    ("t=abc,v1=00", "Unable to extract timestamp"),
    (sign(PAYLOAD).replace("v1=", "v0="), "No signatures found with expected scheme"),
    (sign(PAYLOAD + b" "), "does not verify"),
])
def test_a_bad_signature_is_400_naming_why_and_stores_nothing(srv: Server, signature: str,
                                                              words: str) -> None:
    before = db_state(srv.store)
    reply = deliver(srv, PAYLOAD, signature)
    assert reply.status == 400 and words in reply.json["error"], reply.json
    assert "kpibot webhook stripe --secret" in reply.json["error"]
    assert db_state(srv.store) == before


def test_a_signature_300_seconds_old_a_future_one_and_a_rolled_secret_pass(srv: Server) -> None:
    now = int(time.time())
    old = event("customer.subscription.created", subscription())
    assert deliver(srv, old, sign(old, at=now - 290)).status == 200
    ahead = event("customer.subscription.created", subscription())
    assert deliver(srv, ahead, sign(ahead, at=now + 600)).status == 200
    rolled = event("customer.subscription.created", subscription())
    old_secret, new_secret = sign(rolled, "whsec_old_secret", now), sign(rolled, SECRET, now)
    both = f"{old_secret},v1={new_secret.split('v1=')[1]}"
    assert deliver(srv, rolled, both).status == 200
    assert stored(srv.store) == [("new_customers", EVENING, 3.0, "stripe", ())]


@pytest.mark.parametrize("payload", [b"{not json", b"[1]", b'{"id": "evt_x", "type": "charge.succeeded"}',
                                     b"\xff\xfe"])
def test_a_signed_body_that_is_not_an_event_is_400(srv: Server, payload: bytes) -> None:
    before = db_state(srv.store)
    reply = deliver(srv, payload, sign(payload) if payload != b"\xff\xfe" else "t=1,v1=00")
    assert reply.status == 400 and reply.json["error"]
    assert db_state(srv.store) == before


def test_an_unknown_workspace_is_404_and_one_without_a_secret_400(srv: Server) -> None:
    assert deliver(srv, PAYLOAD, team="TNOPE").status == 404
    srv.store.ensure_workspace("TBARE")
    bare = deliver(srv, PAYLOAD, team="TBARE")
    assert bare.status == 400 and "kpibot webhook stripe --secret" in bare.json["error"]


def test_the_cli_stores_the_secret_the_endpoint_checks(sqlite_url: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", sqlite_url, "--workspace", "TCLI", "webhook", "stripe",
                 "--secret", SECRET]) == 0
    assert "/webhooks/stripe/TCLI" in capsys.readouterr().out
    assert main(["--db", sqlite_url, "--workspace", "TCLI", "webhook", "stripe",
                 "--secret", "sk_live_oops"]) == 2
    assert "whsec_" in capsys.readouterr().err
    store = open_store(sqlite_url)
    try:
        with running(store) as server:
            payload = event("customer.subscription.deleted", subscription())
            assert deliver(server, payload, team="TCLI").json["stored"] == 1
        assert stored(store, "TCLI") == [("customers_lost", date(2026, 3, 11), 1.0, "stripe", ())]
    finally:
        store.engine.dispose()
