"""Double-entry bookkeeping, pure (no I/O).

Amounts are integer fen. A transaction is a list of lines; each line debits (``D``) or credits
(``C``) one account. A transaction is accepted only when its debits equal its credits, so money
is never created or lost by a movement. Nothing is ever edited: a correction is a new
transaction (:func:`reverse` swaps the sides of the original lines).

Accounts are named ``<kind>:<key>``. Every balance is kept as debits − credits:

==================  ==================================  ========  ============================
kind                what it holds                       normal    rule
==================  ==================================  ========  ============================
appropriation       budget allotted to a county (源)     credit    the source of county money
county_budget       a county's money for assistance     debit     never below zero
reserve             a township's reserve fund (备用金)    debit     never below zero (P1, P4)
payable             earmarked for one beneficiary       debit     sub-ledger, per person
bank_clearing       money paid out through the bank     debit     per county
recovery_receivable money to get back from one person   debit     sub-ledger, per person (P5)
recoveries          claims raised for recovery          credit    per county
==================  ==================================  ========  ============================

Per-person accounts (``payable``, ``recovery_receivable``) are a sub-ledger: their balance is
the sum of their entries. Every other account also keeps a balance row, which is what a
posting locks; the floor (never below zero) is checked against it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

DEBIT = "D"
CREDIT = "C"

FLOORED_KINDS = frozenset({"county_budget", "reserve"})
PERSON_KINDS = frozenset({"payable", "recovery_receivable"})
CREDIT_NORMAL_KINDS = frozenset({"appropriation", "recoveries"})
KINDS = FLOORED_KINDS | PERSON_KINDS | CREDIT_NORMAL_KINDS | {"bank_clearing"}


class LedgerError(ValueError):
    """A transaction the ledger refuses."""


class UnbalancedTransaction(LedgerError):
    pass


class Overdraft(LedgerError):
    """The movement would take an account that must never go negative below zero."""

    def __init__(self, account: str, balance_fen: int, change_fen: int) -> None:
        self.account = account
        self.balance_fen = balance_fen
        self.change_fen = change_fen
        super().__init__(f"{account} holds {balance_fen} fen; this movement needs {-change_fen} fen")


@dataclass(frozen=True, slots=True)
class Line:
    account: str
    side: str
    amount_fen: int
    payment_id: str | None = None

    def __post_init__(self) -> None:
        if self.side not in (DEBIT, CREDIT):
            raise LedgerError(f"side must be D or C, got {self.side!r}")
        if isinstance(self.amount_fen, bool) or not isinstance(self.amount_fen, int):
            raise LedgerError("amounts are whole fen (int)")
        if self.amount_fen <= 0:
            raise LedgerError(f"line amounts must be positive, got {self.amount_fen}")
        kind_of(self.account)  # validates the name

    @property
    def signed(self) -> int:
        """The line's effect on its account's balance (debits − credits)."""
        return self.amount_fen if self.side == DEBIT else -self.amount_fen


def debit(account: str, amount_fen: int, payment_id: str | None = None) -> Line:
    return Line(account, DEBIT, amount_fen, payment_id)


def credit(account: str, amount_fen: int, payment_id: str | None = None) -> Line:
    return Line(account, CREDIT, amount_fen, payment_id)


def validate(lines: Sequence[Line]) -> None:
    """Refuses anything but a balanced transaction of at least two lines."""
    if len(lines) < 2:
        raise UnbalancedTransaction("a transaction needs at least one debit and one credit")
    debits = sum(line.amount_fen for line in lines if line.side == DEBIT)
    credits = sum(line.amount_fen for line in lines if line.side == CREDIT)
    if debits != credits:
        raise UnbalancedTransaction(f"debits {debits} fen ≠ credits {credits} fen")


def net_changes(lines: Iterable[Line]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        out[line.account] = out.get(line.account, 0) + line.signed
    return out


def apply(balances: Mapping[str, int], lines: Sequence[Line],
          floored: Callable[[str], bool] | None = None) -> dict[str, int]:
    """New balances of the touched accounts, or :class:`Overdraft` / :class:`UnbalancedTransaction`.

    An account with a floor may not end below zero through a movement that lowers it."""
    validate(lines)
    floored = floored or is_floored
    out: dict[str, int] = {}
    for account, change in sorted(net_changes(lines).items()):
        before = balances.get(account, 0)
        after = before + change
        if change < 0 and after < 0 and floored(account):
            raise Overdraft(account, before, change)
        out[account] = after
    return out


def reverse(lines: Iterable[Line]) -> tuple[Line, ...]:
    """The correcting transaction: every line on the other side."""
    return tuple(Line(line.account, CREDIT if line.side == DEBIT else DEBIT, line.amount_fen, line.payment_id)
                 for line in lines)


# --- account names ------------------------------------------------------------------------

def kind_of(account: str) -> str:
    kind, sep, key = account.partition(":")
    if not sep or not key or kind not in KINDS:
        raise LedgerError(f"unknown account {account!r}")
    return kind


def key_of(account: str) -> str:
    return account.partition(":")[2]


def is_floored(account: str) -> bool:
    return kind_of(account) in FLOORED_KINDS


def is_tracked(account: str) -> bool:
    """Kept as a balance row (everything except the per-person sub-ledger)."""
    return kind_of(account) not in PERSON_KINDS


def normal_balance(account: str, balance_fen: int) -> int:
    """The balance as a person reads it: positive on the account's normal side."""
    return -balance_fen if kind_of(account) in CREDIT_NORMAL_KINDS else balance_fen


def appropriation(county: str) -> str:
    return f"appropriation:{county}"


def county_budget(county: str) -> str:
    return f"county_budget:{county}"


def reserve(township: str) -> str:
    return f"reserve:{township}"


def payable(person_id: str) -> str:
    return f"payable:{person_id}"


def bank_clearing(county: str) -> str:
    return f"bank_clearing:{county}"


def recovery_receivable(person_id: str) -> str:
    return f"recovery_receivable:{person_id}"


def recoveries(county: str) -> str:
    return f"recoveries:{county}"
