"""Dated, versioned policy parameters (低保标准, 低边 multiple, reference incomes, rule thresholds).

The parameter file is data (``features/policy_parameters.toml``); this module only parses it and
answers "which version was in force on date T". Reading the file lives in :mod:`features.io`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from features.dated import in_force


@dataclass(frozen=True)
class PolicyVersion:
    """One version of the parameters. Money is yuan; lines are per person per month."""

    version: str
    effective_from: dt.date
    dibao_line: float
    edge_multiple: float
    pdi_urban: float
    pdi_rural: float
    pdi_all: float
    rigid_share: float
    towns: tuple[str, ...]

    @property
    def edge_line(self) -> float:
        """低保边缘 line, yuan per person per month."""
        return self.dibao_line * self.edge_multiple


@dataclass(frozen=True)
class PolicyBook:
    """All versions, oldest first, and the rule thresholds of today's warnings."""

    versions: tuple[PolicyVersion, ...]
    rules: Mapping[str, float] = field(default_factory=dict)

    def at(self, as_of: dt.date) -> PolicyVersion:
        """The version in force on ``as_of``; before the first one there is no answer."""
        return in_force(self.versions, as_of, "policy parameters")

    @property
    def latest(self) -> PolicyVersion:
        return self.versions[-1]

    @property
    def all_towns(self) -> frozenset[str]:
        return frozenset(t for v in self.versions for t in v.towns)


def parse_policy(doc: Mapping[str, Any]) -> PolicyBook:
    """Builds a :class:`PolicyBook` from the parsed TOML document, checking what it can."""
    versions = []
    for raw in doc.get("version", []):
        eff = raw["effective_from"]
        eff = eff if isinstance(eff, dt.date) else dt.date.fromisoformat(str(eff))
        v = PolicyVersion(
            version=str(raw["version"]), effective_from=eff, dibao_line=float(raw["dibao_line"]),
            edge_multiple=float(raw["edge_multiple"]), pdi_urban=float(raw["pdi_urban"]),
            pdi_rural=float(raw["pdi_rural"]), pdi_all=float(raw["pdi_all"]),
            rigid_share=float(raw["rigid_share"]), towns=tuple(raw["towns"]),
        )
        if v.dibao_line <= 0 or v.edge_multiple < 1 or not v.towns:
            raise ValueError(f"policy version {v.version}: implausible parameters")
        versions.append(v)
    if not versions:
        raise ValueError("the policy file has no [[version]]")
    versions.sort(key=lambda v: v.effective_from)
    return PolicyBook(versions=tuple(versions), rules={k: float(x) for k, x in doc.get("rules", {}).items()})
