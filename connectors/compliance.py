"""Shopify's mandatory compliance webhooks, on the Shopify endpoint like every topic (the
receiver has verified shop and signature before it calls this):

- `customers/redact`: the customer's keys are replaced by random pseudonyms in the store
  (store/privacy.py); the shop's totals stay as they were.
- `shop/redact`: everything of the shop is deleted.
- `customers/data_request`: acknowledged; what the store holds about the customer is logged
  for the shop owner to pass on (customer keys are ids or keyed hashes, never e-mails).

They act on Redis directly and answer 200 only once done (503 when Redis is away, so Shopify
retries): they do not wait behind the event stream, and an answer means it happened.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from xsell_stream.store.privacy import Privacy

from .common import CustomerKeys, load_json, object_id
from .errors import Rejected

log = logging.getLogger("xsell_stream.compliance")

TOPICS = frozenset({"customers/redact", "shop/redact", "customers/data_request"})


def customer_keys(topic: str, body: dict[str, Any], keys: CustomerKeys) -> list[str]:
    """Every key the store may hold the customer under: their id and their e-mail's hash."""
    customer = body.get("customer")
    if not isinstance(customer, dict):
        raise Rejected(400, f"{topic} body has no customer object")
    found = []
    if customer.get("id") not in (None, "", 0):
        found.append(f"id:{object_id(customer['id'], 'customer id')}")
    email = customer.get("email")
    if isinstance(email, str) and email.strip():
        by_email = keys.key(None, email)
        if by_email:
            found.append(by_email)
    if not found:
        raise Rejected(400, "customer has neither id nor email")
    return found


async def handle(topic: str, raw: bytes, shop: str, keys: CustomerKeys,
                 privacy: Privacy) -> dict[str, Any]:
    body = load_json(raw)
    if not isinstance(body, dict):
        raise Rejected(400, f"{topic} body is not a JSON object")
    domain = body.get("shop_domain")
    if not isinstance(domain, str) or domain.strip().lower() != shop:
        raise Rejected(400, f"{topic} shop_domain does not match X-Shopify-Shop-Domain")
    if topic == "shop/redact":
        removed = await privacy.redact_shop(shop)
        log.info("shop/redact %s: removed %d keys and counters", shop, removed)
        return {"status": "shop redacted", "removed": removed}
    held = customer_keys(topic, body, keys)
    if topic == "customers/redact":
        done = await privacy.redact_customer(shop, held)
        log.info("customers/redact %s: %d orders, %d bucket entries, %d offer events "
                 "no longer name the customer", shop, done.orders, done.bucket_entries,
                 done.offers)
        return {"status": "customer redacted", "orders": done.orders,
                "bucket_entries": done.bucket_entries, "offer_events": done.offers}
    request = body.get("data_request")
    request_id = request.get("id") if isinstance(request, dict) else None
    data = await privacy.customer_data(shop, held)
    log.info("customers/data_request %s (request %s): data held: %s", shop, request_id,
             json.dumps(data.as_dict(), sort_keys=True))
    return {"status": "data request acknowledged", "orders": len(data.orders)}
