"""A payment's life and its bank idempotency key, pure.

    unsigned ──(last sign-off, P2)──┐
    scheduled ─(release day, L4)────┤
    (payroll run, P5) ──────────────┴─ earmark ─┬─ ready ── claim ── sending ─┬─ accepted: paid
                                                └─ awaiting_funds             ├─ rejected: money returned,
                                                   (the reserve or budget     │  retried once the account
                                                   lacks it; waits, FIFO)     │  is corrected (new attempt)
                                                                              └─ timeout / 5xx: unknown,
                                                                                 re-sent with the SAME key
    ready without a payee account: awaiting_account (until the account is given)
    any unsent state: suspended (death, stop); an earmark is reversed

Idempotency (the bank dedupes on ``Idempotency-Key``):

- attempt 1 of payment P is sent with key ``P`` (the payment id), attempt n > 1 with ``P:n``;
- a payment is recorded ``sending`` (committed) before the bank is called; any later send of
  that attempt — after a timeout, a 5xx, a crash, a restart — reuses the attempt's key and
  body, so the bank pays it at most once;
- a new attempt (new key) is made only after the bank definitively rejected the previous one
  (nothing was paid under it), e.g. after the account was corrected. So at most one key of a
  payment can ever be paid.
"""
from __future__ import annotations

UNSIGNED = "unsigned"  # a temporary-assistance stage before its sign-offs (P2)
SCHEDULED = "scheduled"
AWAITING_FUNDS = "awaiting_funds"
READY = "ready"
AWAITING_ACCOUNT = "awaiting_account"
SENDING = "sending"
UNKNOWN = "unknown"
PAID = "paid"
REJECTED = "rejected"
SUSPENDED = "suspended"

STATUSES = (UNSIGNED, SCHEDULED, AWAITING_FUNDS, READY, AWAITING_ACCOUNT, SENDING, UNKNOWN, PAID, REJECTED, SUSPENDED)
EARMARKED = frozenset({READY, AWAITING_ACCOUNT})  # money sits in the person's payable
IN_FLIGHT = frozenset({SENDING, UNKNOWN})          # the bank may have paid: never cancel
CANCELLABLE = frozenset({UNSIGNED, SCHEDULED, AWAITING_FUNDS, READY, AWAITING_ACCOUNT, REJECTED})

REJECT_REASONS = ("invalid_account", "account_closed")


def idempotency_key(payment_id: str, attempt: int) -> str:
    if attempt < 1:
        raise ValueError("attempts start at 1")
    return payment_id if attempt == 1 else f"{payment_id}:{attempt}"


def retry_delay_s(sends: int, *, base: float = 5.0, cap: float = 600.0) -> float:
    """Back-off before re-sending an attempt whose outcome is unknown."""
    return min(cap, base * (2 ** max(0, sends - 1)))
