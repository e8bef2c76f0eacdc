"""`POST /webhooks/stripe/<workspace id>`: signed Stripe events become entries, each once.

The signature is checked by the official library (stripe.WebhookSignature.verify_header,
what stripe.Webhook.construct_event calls, 300 s tolerance). Four event types count, on the
event's day in the workspace's time zone, author `stripe`, each adding to that day's value:

| event | metric | by |
|---|---|---|
| charge.succeeded | cash_collected | the amount captured |
| charge.refunded | refunds, refund_requests | the amount this refund added; 1 |
| customer.subscription.created | new_customers | 1 |
| customer.subscription.deleted | customers_lost | 1 |

Money is converted only in the workspace's own currency; a charge in another one is refused
with a log line, an admin notice and a 200, so Stripe does not retry it for days.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from kpis.periods import local_date
from storage import Store, Workspace, Write

log = logging.getLogger("kpibot.api.stripe")
TOLERANCE_S = 300
AUTHOR = "stripe"
#: amounts in major units (docs.stripe.com/currencies)
ZERO_DECIMAL = frozenset(["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"])
#: amounts in thousandths
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
HANDLED = ("charge.succeeded", "charge.refunded", "customer.subscription.created",
           "customer.subscription.deleted")


class BadEvent(Exception):
    """A request Stripe did not sign with this workspace's secret, or that is not an event."""


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, object]
    metrics: frozenset[str] = frozenset()
    day: Any = None


def major_units(amount: int, currency: str) -> float:
    """Stripe's integer amount in the currency's major units (JPY 500 is 500, USD 500 is 5)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return float(amount)
    return amount / (1000 if code in THREE_DECIMAL else 100)


def verify(payload: bytes, header: str | None, secret: str) -> dict[str, Any]:
    """The event as plain JSON, or BadEvent naming why (bad or missing signature, too old,
    not an event)."""
    try:
        # verify_header, not construct_event: the latter crashes on a signed JSON array
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=TOLERANCE_S)
        event = json.loads(payload)
    except stripe.SignatureVerificationError as error:
        raise BadEvent(f"The Stripe signature does not verify: {error.user_message or error}. "
                       "Check that the endpoint secret (kpibot webhook stripe --secret) is this "
                       "endpoint's, and that the server clock is right.") from None
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("The body is not a Stripe event (JSON with an `id` and a `type`).") from None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict) \
            or not isinstance(event["data"].get("object"), dict):
        raise BadEvent("The body is not a Stripe event: it needs `data.object`.")
    return event


def handle(store: Store, workspace: Workspace, event: dict[str, Any], now: datetime) -> Outcome:
    """Stores what the event means, once per event id."""
    event_id, kind = str(event.get("id") or ""), str(event.get("type") or "")
    if not event_id or not kind:
        return Outcome(400, {"error": "The event has no `id` or `type`."})
    if kind not in HANDLED:
        return Outcome(200, {"ignored": kind})
    data = event["data"]
    try:
        created = datetime.fromtimestamp(int(event.get("created") or now.timestamp()), UTC)
        day = local_date(created, workspace.timezone)
        additions, notice = _additions(workspace, kind, data["object"],
                                       data.get("previous_attributes") or {}, day)
    except (TypeError, ValueError, OverflowError, OSError):
        return Outcome(400, {"error": f"The {kind} event has an amount or date that is not a "
                                      "number; nothing was stored."})
    outcome = notice[1] if notice else ", ".join(f"{w.metric}+{w.value:g}" for w in additions)
    batch = store.record_event(workspace.id, "stripe", event_id, kind, additions, actor=AUTHOR,
                               origin="stripe", outcome=outcome or "nothing", now=now,
                               notice=notice)
    if batch is None:
        log.info("stripe event %s (%s) for %s was processed before; not counted again",
                 event_id, kind, workspace.id)
        return Outcome(200, {"duplicate": True, "id": event_id})
    if notice is not None:
        log.warning("stripe event %s for %s refused: %s", event_id, workspace.id, notice[1])
        return Outcome(200, {"refused": notice[1], "id": event_id})
    return Outcome(200, {"stored": len(batch.changes), "id": event_id},
                   frozenset(w.metric for w in additions), day)


def _additions(workspace: Workspace, kind: str, obj: dict[str, Any], previous: Any,
               day: Any) -> tuple[list[Write], tuple[str, str] | None]:
    if kind.startswith("customer.subscription."):
        metric = "new_customers" if kind.endswith(".created") else "customers_lost"
        return [Write(metric, day, 1.0, AUTHOR)], None
    currency = str(obj.get("currency") or "").lower()
    if currency != workspace.currency.lower():
        return [], ("stripe_currency",
                    f"Stripe charge {obj.get('id')} is in {currency.upper() or 'no currency'}, "
                    f"not the workspace's {workspace.currency}: it was not counted. Log it by "
                    "hand, converted, or change the workspace currency.")
    if kind == "charge.succeeded":
        captured = obj.get("amount_captured")
        amount = int(captured if captured is not None else obj.get("amount") or 0)
        return ([Write("cash_collected", day, major_units(amount, currency), AUTHOR)]
                if amount else []), None
    # amount_refunded is cumulative: a second partial refund adds only its own part
    before = previous.get("amount_refunded") if isinstance(previous, dict) else None
    refunded = int(obj.get("amount_refunded") or 0) - int(before or 0)
    writes = [Write("refund_requests", day, 1.0, AUTHOR)]
    if refunded > 0:
        writes.insert(0, Write("refunds", day, major_units(refunded, currency), AUTHOR))
    return writes, None
