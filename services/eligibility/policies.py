"""Policy store: versioned per-region parameters (POST/GET /v1/policies, the stale list).

* A version is (region, effective date, any subset of the parameters). History is never
  overwritten: one version per region and date — publishing the same pair again with the same
  parameters answers 200 with the stored version (a retried request), with different ones 409
  (publish a correction with its own effective date). Version ids are readable:
  ``pv-<region>-<yyyymmdd>``.
* Resolution (``domain.policy.resolve``): per parameter, the nearest region first, then its
  latest version in force. A region without a 低保 standard in force cannot be assessed.
* Every service replica keeps the (small) version table in memory and a cache of resolved
  policies per (region, date); both are refreshed when the table's generation (row count and
  last sequence number, one indexed query) changes, so a publication on any replica takes
  effect everywhere at once, and the engine's per-policy constants are built once per policy.
* ``default_policy.json`` (national root) is loaded idempotently at start, and the EXAMPLE
  county standards only when ``LOAD_EXAMPLE_STANDARDS`` (labelled ``example`` everywhere).
* Stale (动态调整, SX 二(三)5): a standard not adjusted for more than ``STALE_STANDARD_MONTHS``
  on the date asked is flagged, never silently carried forward.
"""
from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal, is_region_code
from shared.calendar import to_shanghai_date
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.logging import correlation_id_var, get_logger
from shared.runtime import ServiceRuntime

from services.eligibility import audit
from services.eligibility.domain.changes import add_months
from services.eligibility.domain.policy import (
    PARAM_SPECS, PolicyVersion, Resolution, ResolvedPolicy, coerce_value, region_depth, resolve, validate_params,
)
from services.eligibility.models import policy_versions
from services.eligibility.settings import Settings

log = get_logger("eligibility.policies")

ROOT = "000000000000"
DATA = Path(__file__).resolve().parent / "data"
STANDARD_KEYS = ("dibao_standard_urban", "dibao_standard_rural")
EXAMPLE_NOTICE = ("EXAMPLE DATA — NOT OFFICIAL: illustrative standards from data/example_standards.json; "
                  "the county must publish its own standards")


def today() -> date:
    return to_shanghai_date(datetime.now(timezone.utc))


def version_id(region_code: str, effective_from: date) -> str:
    return f"pv-{region_code}-{effective_from:%Y%m%d}"


def valid_policy_region(code: object) -> bool:
    return code == ROOT or is_region_code(code)


def ancestors(region_code: str) -> list[str]:
    """The region and every region above it, root first (12-digit codes)."""
    depth = region_depth(region_code)
    out: list[str] = []
    for d in (0, 2, 4, 6, 9, 12):
        if d <= depth:
            code = region_code[:d] + "0" * (12 - d)
            if code not in out:
                out.append(code)
    return out


def region_range(region_code: str) -> tuple[str, str]:
    """Inclusive bounds of the 12-digit codes inside a region (digit strings sort numerically)."""
    d = region_depth(region_code)
    return region_code[:d] + "0" * (12 - d), region_code[:d] + "9" * (12 - d)


def is_stale(adjusted_on: date | None, on: date, months: int) -> bool:
    return adjusted_on is not None and on > add_months(adjusted_on, months)


@dataclass(frozen=True)
class StoredVersion:
    seq: int
    id: str
    region_code: str
    effective_from: date
    params: dict[str, Any]          # typed values
    note: str | None
    example: bool
    published_at: datetime
    published_by: dict[str, str]

    def as_candidate(self) -> PolicyVersion:
        return PolicyVersion(self.id, self.region_code, self.effective_from, self.params)

    def params_json(self) -> dict[str, Any]:
        return {k: (str(v) if not isinstance(v, (bool, int)) else v) for k, v in self.params.items()}

    def to_dict(self, *, with_publisher: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "region_code": self.region_code, "effective_from": self.effective_from.isoformat(),
            "params": self.params_json(), "note": self.note, "example": self.example,
            "published_at": self.published_at.isoformat()}
        if with_publisher:
            out["published_by"] = dict(self.published_by)
        return out


@dataclass
class Snapshot:
    generation: tuple[int, int]
    by_region: dict[str, list[StoredVersion]] = field(default_factory=dict)
    by_id: dict[str, StoredVersion] = field(default_factory=dict)

    @property
    def max_seq(self) -> int:
        return self.generation[1]

    def candidates(self, region_code: str, max_seq: int | None = None) -> list[PolicyVersion]:
        out = []
        for code in ancestors(region_code):
            for v in self.by_region.get(code, ()):
                if max_seq is None or v.seq <= max_seq:
                    out.append(v)
        out.sort(key=lambda v: v.seq)  # publication order breaks same-date ties (resolve())
        return [v.as_candidate() for v in out]


class PolicyService:
    def __init__(self, runtime: ServiceRuntime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self._snap: Snapshot | None = None
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[tuple[Any, ...], tuple[Resolution, ResolvedPolicy | None]] = OrderedDict()
        self._interned: dict[frozenset[tuple[str, str]], ResolvedPolicy] = {}
        self.on_publish: list[Callable[[], None]] = []

    # -- the in-memory snapshot ------------------------------------------------------------
    async def _generation(self, session: AsyncSession | None = None) -> tuple[int, int]:
        q = sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(policy_versions.c.seq), 0)).select_from(policy_versions)
        if session is not None:
            row = (await session.execute(q)).one()
        else:
            async with self.runtime.session_factory() as s:
                row = (await s.execute(q)).one()
        return int(row[0]), int(row[1])

    async def snapshot(self, session: AsyncSession | None = None) -> Snapshot:
        """The published versions (cached until a publication changes them). A caller inside a
        transaction passes its ``session``: checking out a second pooled connection while holding
        one is how a busy pool deadlocks (every holder waiting for another connection)."""
        gen = await self._generation(session)
        snap = self._snap
        if snap is not None and snap.generation == gen:
            return snap
        async with self._lock:
            if self._snap is not None and self._snap.generation == gen:
                return self._snap
            q = sa.select(policy_versions).order_by(policy_versions.c.seq)
            if session is not None:
                rows = (await session.execute(q)).mappings().all()
            else:
                async with self.runtime.session_factory() as s:
                    rows = (await s.execute(q)).mappings().all()
            snap = Snapshot(generation=(len(rows), max((r["seq"] for r in rows), default=0)))
            for r in rows:
                params = {}
                for k, v in (r["params"] or {}).items():
                    if k in PARAM_SPECS:
                        params[k] = coerce_value(k, v)
                sv = StoredVersion(seq=r["seq"], id=r["id"], region_code=r["region_code"],
                                   effective_from=r["effective_from"], params=params, note=r["note"],
                                   example=bool(r["example"]), published_at=r["published_at"],
                                   published_by={"sub": r["published_by_sub"], "name": r["published_by_name"],
                                                 "role": r["published_by_role"]})
                snap.by_region.setdefault(sv.region_code, []).append(sv)
                snap.by_id[sv.id] = sv
            self._snap = snap
            self._cache.clear()
            self._interned.clear()
            return snap

    def resolve_in(self, snap: Snapshot, region_code: str, on: date,
                   max_seq: int | None = None) -> tuple[Resolution, ResolvedPolicy | None]:
        """Resolution and (when complete) the engine's policy; cached per (region, date)."""
        key = (snap.generation, region_code, on, max_seq)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        res = resolve(snap.candidates(region_code, max_seq), on, region_code)
        policy: ResolvedPolicy | None = None
        if res.complete:
            ikey = frozenset(res.sources.items())
            policy = self._interned.get(ikey)
            if policy is None:
                policy = self._interned[ikey] = res.policy()
        self._cache[key] = (res, policy)
        if len(self._cache) > 4096:
            self._cache.popitem(last=False)
        return res, policy

    async def resolved(self, region_code: str, on: date, *, session: AsyncSession | None = None
                       ) -> tuple[Resolution, ResolvedPolicy | None, Snapshot]:
        snap = await self.snapshot(session)
        res, policy = self.resolve_in(snap, region_code, on)
        return res, policy, snap

    async def as_of_publication(self, region_code: str, on: date, seq: int | None, *,
                                session: AsyncSession | None = None) -> tuple[Resolution, ResolvedPolicy | None]:
        """The resolution as the versions published up to ``seq`` made it (what a stored proposal
        was computed with). Versions are only ever appended, so a cached snapshot that already
        holds ``seq`` answers without asking the database."""
        snap = self._snap
        if seq is None or snap is None or snap.max_seq < seq:
            snap = await self.snapshot(session)
        return self.resolve_in(snap, region_code, on, max_seq=seq)

    def stale(self, policy: ResolvedPolicy | None, on: date) -> bool:
        return policy is not None and is_stale(policy.standard_adjusted_on, on, self.settings.stale_standard_months)

    # -- start-up data ------------------------------------------------------------------------
    async def load_defaults(self) -> None:
        """The national defaults always, the EXAMPLE county standards when configured (idempotent)."""
        files = [("default_policy.json", False)]
        if self.settings.load_example_standards:
            files.append(("example_standards.json", True))
        for name, example in files:
            doc = json.loads((DATA / name).read_text(encoding="utf-8"))
            values, errors = validate_params(doc["params"])
            if errors:
                raise RuntimeError(f"{name}: invalid parameters {errors}")
            eff = date.fromisoformat(doc["effective_from"])
            vid = version_id(doc["region_code"], eff)
            note = (EXAMPLE_NOTICE if example else f"shipped defaults ({name}): {doc.get('description', '')}")[:1000]
            try:
                async with self.runtime.uow() as tx:
                    await tx.session.execute(policy_versions.insert().values(
                        id=vid, region_code=doc["region_code"], effective_from=eff, params=_json_params(values),
                        note=note, example=example, published_at=datetime.now(timezone.utc),
                        published_by_sub=f"system:{name}", published_by_name="eligibility start-up",
                        published_by_role="system"))
                    await audit.append(tx.session, audit.SYSTEM, "policy.loaded", "policy_version", vid,
                                       {"file": name, "example": example})
                log.info("policy_loaded", version=vid, example=example)
            except IntegrityError:
                pass  # already loaded (by this or another replica)

    # -- publish ------------------------------------------------------------------------------
    async def publish(self, region_code: Any, effective_from: date, raw_params: Any, note: str | None,
                      principal: Principal) -> tuple[int, dict[str, Any]]:
        errors: list[dict[str, str]] = []
        if not is_region_code(region_code):
            errors.append({"field": "region_code", "message": "must be a 12-digit administrative region code"})
        if not (date(2000, 1, 1) <= effective_from <= date(today().year + 10, 12, 31)):
            errors.append({"field": "effective_from", "message": "must be between 2000-01-01 and ten years ahead"})
        values, param_errors = validate_params(raw_params)
        errors += [{"field": f, "message": m} for f, m in param_errors]
        if not param_errors and not values:
            errors.append({"field": "params", "message": "give at least one parameter (a version that changes nothing is refused)"})
        if errors:
            raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
        if not principal.covers(region_code):
            raise Forbidden(f"region {region_code} is outside this token's region {principal.region}")
        vid = version_id(region_code, effective_from)
        now = datetime.now(timezone.utc)
        as_of = max(effective_from, today())
        job_id = None
        try:
            async with self.runtime.uow() as tx:
                # The insert comes first: the unique (region, date) decides, and on SQLite the
                # write lock is taken before anything is read.
                await tx.session.execute(policy_versions.insert().values(
                    id=vid, region_code=region_code, effective_from=effective_from, params=_json_params(values),
                    note=note, example=False, published_at=now, published_by_sub=principal.sub,
                    published_by_name=principal.name, published_by_role=principal.role))
                from services.eligibility.reevaluation import new_job  # noqa: PLC0415 (cycle)
                job_id = await new_job(tx.session, region_code=region_code, trigger="policy", policy_version_id=vid,
                                       as_of=as_of, actor=audit.Actor(principal.sub, principal.name, principal.role),
                                       correlation_id=correlation_id_var.get())
                await audit.append(tx.session, audit.Actor(principal.sub, principal.name, principal.role),
                                   "policy.published", "policy_version", vid,
                                   {"region_code": region_code, "effective_from": effective_from.isoformat(),
                                    "params": _json_params(values), "note": note, "reevaluation_id": job_id})
        except IntegrityError:
            snap = await self.snapshot()
            existing = snap.by_id.get(vid)
            if existing is None:  # same region and date under another id cannot happen; be safe
                raise Conflict(f"a version for {region_code} effective {effective_from} already exists") from None
            if existing.params_json() == _json_params(values):
                return 200, {**existing.to_dict(), "reevaluation_id": None}
            raise Conflict(
                f"version {vid} for region {region_code} effective {effective_from} already exists with other "
                "parameters; history is never overwritten: publish the correction with its own effective date",
                extra={"existing_version": existing.to_dict()}) from None
        for hook in self.on_publish:
            hook()
        snap = await self.snapshot()
        return 201, {**snap.by_id[vid].to_dict(), "reevaluation_id": job_id}

    # -- reads ----------------------------------------------------------------------------------
    async def view(self, region_code: str, on: date) -> dict[str, Any]:
        """GET /v1/policies/{region_code}?on=DATE — every key always present::

            {"region_code", "on",
             "policy_version": the nearest region's latest contributing version,
             "complete": every parameter is set, "missing": [keys nobody sets (e.g. the standards)],
             "params": {key: value}, "sources": {key: version id it came from},
             "versions": [the contributing versions: id, region_code, effective_from, params, note,
                          example, published_at],
             "standard_adjusted_on": when the 低保 standards in force were set,
             "stale": more than STALE_STANDARD_MONTHS ago on ``on``, "stale_since": date | null,
             "stale_after_months", "example_data": any EXAMPLE version contributes, "notice": text | null}
        """
        res, policy, snap = await self.resolved(region_code, on)
        contributing = [snap.by_id[v] for v in dict.fromkeys(res.sources.values()) if v in snap.by_id]
        example = any(v.example for v in contributing)
        adjusted = None
        if all(k in res.sources for k in STANDARD_KEYS):
            adjusted = max(res.effective_dates[res.sources[k]] for k in STANDARD_KEYS)
        stale = is_stale(adjusted, on, self.settings.stale_standard_months)
        body: dict[str, Any] = {
            "region_code": region_code,
            "on": on.isoformat(),
            "policy_version": res.version_id,
            "complete": res.complete,
            "missing": list(res.missing),
            "params": {k: (str(v) if not isinstance(v, (bool, int)) else v) for k, v in res.values.items()},
            "sources": dict(res.sources),
            "versions": [v.to_dict(with_publisher=False) for v in contributing],
            "standard_adjusted_on": adjusted.isoformat() if adjusted else None,
            "stale": stale,
            "stale_since": (add_months(adjusted, self.settings.stale_standard_months).isoformat()
                            if stale and adjusted else None),
            "stale_after_months": self.settings.stale_standard_months,
            "example_data": example,
            "notice": EXAMPLE_NOTICE if example else None,
        }
        return body

    async def history(self, region_code: str) -> dict[str, Any]:
        """Every version of the region and of the regions above it, with who published it."""
        snap = await self.snapshot()
        versions = [v for code in ancestors(region_code) for v in snap.by_region.get(code, ())]
        versions.sort(key=lambda v: (region_depth(v.region_code), v.effective_from, v.seq))
        return {"region_code": region_code, "versions": [v.to_dict() for v in versions]}

    async def stale_regions(self, scope: str, on: date) -> dict[str, Any]:
        """GET /v1/policies-stale: regions inside ``scope`` (and the regions above it whose
        standard applies inside it) whose 低保 standard in force on ``on`` is stale."""
        snap = await self.snapshot()
        months = self.settings.stale_standard_months
        lo, hi = region_range(scope)
        candidates = {code for code, vs in snap.by_region.items()
                      if any(k in v.params for v in vs for k in STANDARD_KEYS)
                      and (lo <= code <= hi or code in ancestors(scope))}
        out = []
        for code in sorted(candidates):
            res, policy = self.resolve_in(snap, code, on)
            if not all(k in res.sources for k in STANDARD_KEYS):
                continue
            adjusted = max(res.effective_dates[res.sources[k]] for k in STANDARD_KEYS)
            if is_stale(adjusted, on, months):
                out.append({"region_code": code, "standard_adjusted_on": adjusted.isoformat(),
                            "stale_since": add_months(adjusted, months).isoformat(),
                            "standard_version": res.sources["dibao_standard_urban"],
                            "dibao_standard_urban": str(res.values["dibao_standard_urban"]),
                            "dibao_standard_rural": str(res.values["dibao_standard_rural"]),
                            "example_data": any(snap.by_id[v].example for v in set(res.sources.values())
                                                if v in snap.by_id)})
        return {"region_code": scope, "on": on.isoformat(), "stale_after_months": months, "regions": out}


def _json_params(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (bool, int)) else str(v)) for k, v in values.items()}

