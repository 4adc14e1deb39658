"""Webhook signatures: base64 HMAC-SHA256 over the raw body bytes, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac


def sign(secret: str, body: bytes) -> str:
    """The signature a store sends for `body` (Shopify and WooCommerce use the same scheme)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(body: bytes, signature: str | None, secrets: list[str]) -> bool:
    """True when `signature` matches `body` under any of the configured secrets (rotation).

    Every secret is tried, so the time taken does not tell which one matched."""
    if not signature:
        return False
    given = signature.strip().encode()
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(secret, body).encode(), given)
    return matched
