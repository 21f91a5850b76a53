"""`make chaos SEED=… FAULTS=…`: one fault campaign, printed; exit 1 on any violation."""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.chaos.harness import Campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--keep-databases", action="store_true")
    ns = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix=f"chaos-{ns.seed}-"))
    report = asyncio.run(Campaign(ns.seed, ns.faults, work, keep_databases=ns.keep_databases).run())
    print(report.render(), flush=True)
    print(f"logs: {work}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
