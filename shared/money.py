"""Money (金额) as exact ``Decimal`` yuan, rounded half up to 0.01, or as integer fen (分).

Floats are refused everywhere: ``0.1 + 0.2`` is not ``0.3`` and a benefit amount must be.
Parsed amounts keep all their digits; rounding happens where a figure is produced
(:func:`round_yuan`), so sums of rounded lines stay exact.
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

from shared.errors import InvalidInput

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
# 10^15 yuan in fen still fits a signed 64-bit column, and no real amount comes near it.
MAX_ABS_YUAN = Decimal(10) ** 15
_PLAIN_DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_MAX_TEXT = 64


def _parse(value: Any, allow_negative: bool) -> Decimal:
    """The exact Decimal, or ValueError with a message fit for the person who typed it."""
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("must be a decimal string such as \"1234.50\", not a binary floating-point number")
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite amount")
        result = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_TEXT or not _PLAIN_DECIMAL.match(text):
            raise ValueError(f"must be a decimal amount such as \"1234.50\", got {value[:_MAX_TEXT]!r}")
        result = Decimal(text)
    else:
        raise ValueError(f"must be a decimal string such as \"1234.50\", not {type(value).__name__}")
    if abs(result) >= MAX_ABS_YUAN:
        raise ValueError("is too large")
    if result < 0 and not allow_negative:
        raise ValueError("must not be negative")
    # -0 and 0 are the same amount; keep "-0.00" out of outputs.
    return result.copy_abs() if result == 0 else result


def parse_money(value: str | int | Decimal, *, field: str = "amount", allow_negative: bool = False) -> Decimal:
    """An exact Decimal amount in yuan, or ``InvalidInput`` naming ``field``."""
    try:
        return _parse(value, allow_negative)
    except ValueError as exc:
        raise InvalidInput.field(field, str(exc)) from None


def round_yuan(d: Decimal) -> Decimal:
    """Round to 0.01 yuan, half up (四舍五入)."""
    if isinstance(d, (float, bool)) or not isinstance(d, (Decimal, int)):
        raise TypeError(f"round_yuan needs a Decimal, got {type(d).__name__}")
    result = Decimal(d).quantize(CENT, rounding=ROUND_HALF_UP)
    return result.copy_abs() if result == 0 else result


def to_fen(d: Decimal) -> int:
    """Whole fen of the amount rounded half up to 0.01 yuan."""
    return int(round_yuan(d).scaleb(2))


def from_fen(fen: int) -> Decimal:
    """The yuan amount with exactly two places."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"from_fen needs an int, got {type(fen).__name__}")
    return Decimal(fen).scaleb(-2).quantize(CENT)


def format_yuan(d: Decimal) -> str:
    """``"1234.50"``: rounded half up, two places, no grouping, no exponent."""
    return f"{round_yuan(d):.2f}"


def _pydantic_validator(allow_negative: bool):
    def validate(value: Any) -> Decimal:
        try:
            return _parse(value, allow_negative)
        except (ValueError, InvalidOperation) as exc:
            raise PydanticCustomError("money", "amount {reason}", {"reason": str(exc)}) from None
    return validate


def _json_schema(allow_negative: bool) -> dict[str, Any]:
    pattern = r"^[+-]?\d+(\.\d+)?$" if allow_negative else r"^\+?\d+(\.\d+)?$"
    return {"type": "string", "pattern": pattern, "examples": ["1234.50"],
            "description": "Yuan as a decimal string; rounded half up to 0.01 in outputs"}


MoneyStr = Annotated[
    Decimal,
    BeforeValidator(_pydantic_validator(allow_negative=False)),
    PlainSerializer(format_yuan, return_type=str),
    WithJsonSchema(_json_schema(allow_negative=False)),
]
"""A non-negative amount in request/response models: decimal string (or int) in, Decimal inside, "0.00" out."""

SignedMoneyStr = Annotated[
    Decimal,
    BeforeValidator(_pydantic_validator(allow_negative=True)),
    PlainSerializer(format_yuan, return_type=str),
    WithJsonSchema(_json_schema(allow_negative=True)),
]
"""Like :data:`MoneyStr` but negative amounts (adjustments, refunds) are allowed."""
