"""M2: partner requests are signed with the partner's own key (pure; no I/O).

signature = hex(HMAC-SHA256(key, f"{timestamp}\\n{nonce}\\n{sha256_hex(body)}"))

The timestamp (unix seconds) must be within ``max_age_s`` of now in either direction; the nonce
must never have been seen (the caller stores it). Comparison is constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
import re

_NONCE = re.compile(r"^[A-Za-z0-9_\-.:]{8,128}$")


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def string_to_sign(timestamp: str, nonce: str, digest_hex: str) -> str:
    return f"{timestamp}\n{nonce}\n{digest_hex}"


def sign(key: str, timestamp: str, nonce: str, body: bytes) -> str:
    msg = string_to_sign(timestamp, nonce, body_digest(body)).encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def signature_problem(*, key: str | None, timestamp: str | None, nonce: str | None, signature: str | None,
                      digest_hex: str | None, now: float, max_age_s: int) -> str | None:
    """None when the request is authentic and fresh, else why not (for a 401). Without
    ``digest_hex`` (a streamed body not read yet) everything but the HMAC itself is checked."""
    if key is None:
        return "unknown partner (no signing key configured for X-Partner-Id)"
    if not timestamp or not nonce or not signature:
        return "X-Timestamp, X-Nonce and X-Signature headers are required"
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "X-Timestamp must be unix seconds"
    if abs(now - int(timestamp)) > max_age_s:
        return f"X-Timestamp is more than {max_age_s} s away from the server's clock (stale or replayed request)"
    if not _NONCE.match(nonce):
        return "X-Nonce must be 8–128 characters of [A-Za-z0-9_-.:]"
    if digest_hex is None:
        return None
    expected = hmac.new(key.encode(), string_to_sign(timestamp, nonce, digest_hex).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        return "X-Signature does not match the body (altered request or wrong key)"
    return None
