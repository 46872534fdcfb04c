"""The calculator's own dated limits (``[[eligibility]]`` in the policy parameter file), and the
parameters in force per city as ``GET /v1/policy/parameters`` shows them (:func:`city_parameters`,
:func:`cities_overview`)."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from typing import Any

from features.dated import in_force
from features.io import policy_file_text
from features.policy import PolicyBook, PolicyVersion


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


# ---- the parameters in force, as the API and the command line show them --------------------------
class ParameterError(ValueError):
    """A question about the parameters that has no answer; ``field`` names what was asked wrong
    (``city`` or ``on``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def city_parameters(policy: PolicyBook, eligibility: EligibilityBook, city: str, on: dt.date) -> dict[str, Any]:
    """The parameters in force on ``on`` in ``city``: its version of the lines (money in yuan, lines
    per person per month, reference incomes per year), its towns, and the calculator's limits
    (one set for every city; the asset limit is a number of months of the city's own line)."""
    if city not in policy.city_ids:
        raise ParameterError("city", f"unknown city {city!r}; known cities: {policy.known_cities()}")
    try:
        v, e = policy.at(on, city), eligibility.at(on)
    except ValueError as exc:
        raise ParameterError("on", str(exc)) from None
    return {"city": city, "name": policy.city(city).name_zh, "home": city == policy.home_city, "on": on.isoformat(),
            "version": v.version, "effective_from": v.effective_from.isoformat(),
            "dibao_standard_monthly": v.dibao_line, "edge_multiple": v.edge_multiple,
            "edge_standard_monthly": v.edge_line, "pdi_urban": v.pdi_urban, "pdi_rural": v.pdi_rural,
            "pdi_all": v.pdi_all, "rigid_share": v.rigid_share, "towns": list(v.towns),
            "eligibility": {"version": e.version, "effective_from": e.effective_from.isoformat(),
                            "assets_months_of_line": e.assets_months_of_line,
                            "assets_limit_per_capita": e.assets_months_of_line * v.dibao_line,
                            "max_properties": e.max_properties, "max_vehicles": e.max_vehicles,
                            "expenditure_older_multiple": e.expenditure_older_multiple}}


def cities_overview(policy: PolicyBook, on: dt.date) -> dict[str, Any]:
    """Every city, the home city first, with its towns and 低保标准 in force on ``on`` (null, and no
    towns, for a city whose first version starts later). A date before the home city's first
    version has no answer."""
    try:
        policy.at(on)
    except ValueError as exc:
        raise ParameterError("on", str(exc)) from None
    cities = []
    for c in policy.cities:
        try:
            v: PolicyVersion | None = policy.at(on, c.id)
        except ValueError:
            v = None
        cities.append({"city": c.id, "name": c.name_zh, "home": c.id == policy.home_city,
                       "towns": list(v.towns) if v else [], "dibao_standard_monthly": v.dibao_line if v else None,
                       "version": v.version if v else None})
    return {"home_city": policy.home_city, "on": on.isoformat(), "cities": cities}
