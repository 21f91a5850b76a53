"""Payments operations from the command line (DATABASE_URL etc. from the environment).

    python -m services.payments.cli scan [--today 2026-10-10]   P3 deadlines, P4 reserve alerts,
                                                                staged releases, waiting payouts
    python -m services.payments.cli dispatch                    send due payments to the bank once
    python -m services.payments.cli verify-ledger               recompute the ledger's invariants

Events the scan raises go to the outbox; the running service's relay publishes them.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date

import orjson

from shared.calendar import default_calendar
from shared.logging import configure_logging
from shared.migrations import upgrade_head_async
from shared.runtime import ServiceRuntime

from services.payments import ledger
from services.payments.app import SERVICE_DIR
from services.payments.bank import HttpBank
from services.payments.composition import Payments
from services.payments.settings import Settings
from services.payments.storage import today_shanghai


async def _run(args: argparse.Namespace) -> dict[str, object]:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    await upgrade_head_async(SERVICE_DIR, settings.database_url)
    runtime = ServiceRuntime(settings, service_dir=SERVICE_DIR, migrate_on_start=False)
    bank = (HttpBank(settings.bank_url, timeout_s=settings.bank_timeout_s, retries=settings.bank_retries)
            if settings.bank_url else None)
    app = Payments(runtime, settings, default_calendar(), bank)
    try:
        if args.command == "scan":
            return await app.tick(args.today or today_shanghai())
        if args.command == "dispatch":
            if bank is None:
                return {"error": "BANK_URL is not set"}
            stats = await app.payouts.dispatch_once()
            return {k: v for k, v in vars(stats).items()}
        async with runtime.session_factory() as s:
            return await ledger.verify(s)
    finally:
        await app.stop()
        await runtime.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.payments.cli", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="P3/P4 scans, staged releases, waiting payouts")
    scan.add_argument("--today", type=date.fromisoformat, default=None, help="YYYY-MM-DD (Asia/Shanghai)")
    sub.add_parser("dispatch", help="send due payments once")
    sub.add_parser("verify-ledger", help="check balanced transactions and balance rows")
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    print(orjson.dumps(result, default=str, option=orjson.OPT_INDENT_2).decode())
    return 0 if result.get("ok", True) and "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
