"""Pure eligibility domain: policy parameters and the rule engine (no I/O, stdlib only).

- :mod:`.policy` — the parameter table (``PARAM_SPECS``), validation of a published
  parameter set, resolution of the versions in force for a region on a date, and the
  :class:`~.policy.ResolvedPolicy` the engine runs on.
- :mod:`.rules` — the input/output dataclasses and :func:`~.rules.assess`, which implements
  POST /v1/assessments exactly as docs/API.md states it, with an explanation per figure.
"""
from .policy import (
    PARAM_SPECS,
    ParamSpec,
    PolicyParams,
    PolicyVersion,
    Resolution,
    ResolvedPolicy,
    region_depth,
    resolve,
    validate_params,
)
from .rules import (
    Assessment,
    AssessmentRequest,
    BreakdownLine,
    Hardship,
    Household,
    InvalidRequest,
    Member,
    Reason,
    assess,
)

__all__ = [
    "PARAM_SPECS", "ParamSpec", "PolicyParams", "PolicyVersion", "Resolution",
    "ResolvedPolicy", "region_depth", "resolve", "validate_params",
    "Assessment", "AssessmentRequest", "BreakdownLine", "Hardship", "Household",
    "InvalidRequest", "Member", "Reason", "assess",
]
