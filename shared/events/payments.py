"""Events published by payments (topics ``payments.disbursement``, ``payments.reserve``, …)."""
from __future__ import annotations
