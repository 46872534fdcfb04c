"""The calculator's own dated limits (``[[eligibility]]`` in the policy parameter file)."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass

from features.dated import in_force
from features.io import policy_file_text


@dataclass(frozen=True)
class EligibilityVersion:
    version: str
    effective_from: dt.date
    assets_months_of_line: float
    max_properties: int
    max_vehicles: int
    expenditure_older_multiple: float


@dataclass(frozen=True)
class EligibilityBook:
    versions: tuple[EligibilityVersion, ...]

    def at(self, as_of: dt.date) -> EligibilityVersion:
        return in_force(self.versions, as_of, "eligibility limits")


def load_eligibility(path: str | None = None) -> EligibilityBook:
    doc = tomllib.loads(policy_file_text(path))
    versions = []
    for raw in doc.get("eligibility", []):
        eff = raw["effective_from"]
        versions.append(EligibilityVersion(
            version=str(raw["version"]),
            effective_from=eff if isinstance(eff, dt.date) else dt.date.fromisoformat(str(eff)),
            assets_months_of_line=float(raw["assets_months_of_line"]), max_properties=int(raw["max_properties"]),
            max_vehicles=int(raw["max_vehicles"]), expenditure_older_multiple=float(raw["expenditure_older_multiple"]),
        ))
    if not versions:
        raise ValueError("the policy file has no [[eligibility]] limits")
    return EligibilityBook(tuple(sorted(versions, key=lambda v: v.effective_from)))
