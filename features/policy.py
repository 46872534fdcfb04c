"""Dated, versioned policy parameters (低保标准, 低边 multiple, reference incomes, rule thresholds),
per city (省内通办: one service for several cities of the province, each with its own lines and towns).

The parameter file is data (``features/policy_parameters.toml``); this module only parses it and
answers "which version was in force on date T, in city C". Reading the file lives in :mod:`features.io`.

A city is ``[[city]]`` (``id``, ``name_zh``); ``home_city`` names the one whose parameters answer
when no city is given (:meth:`PolicyBook.at` with one argument, as most callers ask). A ``[[version]]``
without ``city`` is the home city's, so a file written before cities existed reads as it did: a file
with no ``[[city]]`` at all has one city, :data:`DEFAULT_HOME_CITY`. A town belongs to one city only;
a household's city is its town's (:meth:`PolicyBook.cities_of`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.dated import in_force, parse_day

# the city of a file that declares none: the nine towns of the contract are 张家港市's
DEFAULT_HOME_CITY = "zhangjiagang"
DEFAULT_HOME_NAME = "张家港市"
_SMALL = 32  # households up to which looking their cities up one by one is the faster way


@dataclass(frozen=True)
class City:
    id: str
    name_zh: str


@dataclass(frozen=True)
class PolicyVersion:
    """One version of one city's parameters. Money is yuan; lines are per person per month."""

    version: str
    effective_from: dt.date
    dibao_line: float
    edge_multiple: float
    pdi_urban: float
    pdi_rural: float
    pdi_all: float
    rigid_share: float
    towns: tuple[str, ...]
    city: str = DEFAULT_HOME_CITY

    @property
    def edge_line(self) -> float:
        """低保边缘 line, yuan per person per month."""
        return self.dibao_line * self.edge_multiple


@dataclass(frozen=True)
class PolicyBook:
    """Every city's versions, oldest first, and the rule thresholds of today's warnings (one set for
    all cities). ``cities`` lists the home city first, then the others in file order."""

    by_city: Mapping[str, tuple[PolicyVersion, ...]]
    cities: tuple[City, ...]
    rules: Mapping[str, float] = field(default_factory=dict)
    _town_city: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for city, versions in self.by_city.items():
            for v in versions:
                for town in v.towns:
                    self._town_city.setdefault(town, city)

    # ---- cities ---------------------------------------------------------------------------------
    @property
    def home_city(self) -> str:
        return self.cities[0].id

    @property
    def city_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.cities)

    def city(self, city: str) -> City:
        """The city of that id; ``KeyError`` naming it and the known cities."""
        for c in self.cities:
            if c.id == city:
                return c
        raise KeyError(f"unknown city {city!r}; known cities: {self.known_cities()}")

    def known_cities(self) -> str:
        """``zhangjiagang (张家港市), changshu (常熟市)``: for messages."""
        return ", ".join(f"{c.id} ({c.name_zh})" for c in self.cities)

    def city_of_town(self, town: str) -> str | None:
        """The city a town code belongs to (in any version of its parameters); None if no city has it."""
        return self._town_city.get(town)

    def towns_of(self, city: str, day: dt.date) -> tuple[str, ...]:
        """The towns of ``city`` in its version in force on ``day``."""
        return self.at(day, city).towns

    @property
    def all_towns(self) -> frozenset[str]:
        """Every city's towns, in any version: the raw tables may mix cities."""
        return frozenset(self._town_city)

    @property
    def city_towns(self) -> dict[str, frozenset[str]]:
        """Per city, its towns in any of its versions (what the table checks hold a ``city`` column to)."""
        return {c: frozenset(t for v in versions for t in v.towns) for c, versions in self.by_city.items()}

    # ---- versions -------------------------------------------------------------------------------
    @property
    def versions(self) -> tuple[PolicyVersion, ...]:
        """The home city's versions, oldest first."""
        return self.by_city[self.home_city]

    def at(self, as_of: dt.date, city: str | None = None) -> PolicyVersion:
        """The version in force on ``as_of`` in ``city`` (None: the home city); before the city's
        first version there is no answer (``ValueError``), nor for an unknown city (``KeyError``)."""
        if city is None or city == self.home_city:
            return in_force(self.versions, as_of, "policy parameters")
        if city not in self.by_city:
            raise KeyError(f"unknown city {city!r}; known cities: {self.known_cities()}")
        return in_force(self.by_city[city], as_of, f"policy parameters of {city}")

    @property
    def latest(self) -> PolicyVersion:
        """The home city's latest version."""
        return self.versions[-1]

    # ---- households -----------------------------------------------------------------------------
    def cities_of(self, towns: np.ndarray | Sequence[Any], cities: np.ndarray | Sequence[Any] | None = None
                  ) -> np.ndarray:
        """Each household's city id (object array): its ``city`` where given (a non-empty string),
        else its town's city. A town no city knows counts as the home city's: the checks at the
        boundary refuse such a town; a caller that did not check gets the home city's lines, as
        before cities existed."""
        home, town_city = self.home_city, self._town_city
        if len(towns) <= _SMALL:  # one household (the API): plain Python beats pandas' hash tables
            given = [None] * len(towns) if cities is None else cities
            return np.array([c if isinstance(c, str) and c else town_city.get(t, home) if isinstance(t, str) else home
                             for t, c in zip(towns, given, strict=True)], dtype=object)
        # a city's households: look each distinct town (and city) up once
        codes, distinct = pd.factorize(pd.Series(towns, dtype=object))
        out = np.array([town_city.get(t, home) for t in distinct.tolist()] + [home], dtype=object)[codes]
        if cities is not None:
            codes, distinct = pd.factorize(pd.Series(cities, dtype=object))
            named = np.array([isinstance(c, str) and c != "" for c in distinct.tolist()] + [False])[codes]
            out[named] = np.asarray(cities, dtype=object)[named]
        return out

    def groups(self, cities: np.ndarray | None) -> list[tuple[str, np.ndarray | None]]:
        """The households of each city: ``(city, rows)``, ``rows`` their positions (None: all of
        them, the usual case of one city). ``cities``: per household, as :meth:`cities_of` gives
        them; None: every household is of the home city."""
        if cities is None or not len(cities):
            return [(self.home_city, None)]
        first = cities[0]
        if len(cities) == 1 or bool((cities == first).all()):
            return [(str(first), None)]
        return [(str(c), np.flatnonzero(cities == c)) for c in dict.fromkeys(cities.tolist())]

    def dibao_lines(self, cities: np.ndarray | None, as_of: dt.date) -> float | np.ndarray:
        """The 低保 line in force on ``as_of`` for each household (per :meth:`groups`): one number when
        all are of one city, else an array of one per household."""
        groups = self.groups(cities)
        if len(groups) == 1:
            return self.at(as_of, groups[0][0]).dibao_line
        assert cities is not None
        lines = np.empty(len(cities))
        for city, rows in groups:
            lines[rows] = self.at(as_of, city).dibao_line
        return lines


def _day(raw: Any, where: str) -> dt.date:
    return parse_day(raw, f"{where}, field 'effective_from'")


def _cities(doc: Mapping[str, Any]) -> tuple[City, ...]:
    """The file's cities, the home city first."""
    raw_cities = doc.get("city", [])
    home = doc.get("home_city")
    if not raw_cities:
        if home not in (None, DEFAULT_HOME_CITY):
            raise ValueError(f"home_city {home!r} is not a [[city]] of the policy file (it has none)")
        return (City(DEFAULT_HOME_CITY, DEFAULT_HOME_NAME),)
    cities = []
    for k, raw in enumerate(raw_cities):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str) or not raw["id"] \
                or not isinstance(raw.get("name_zh"), str) or not raw["name_zh"]:
            raise ValueError(f"[[city]] #{k + 1}: needs an id and a name_zh (strings)")
        if any(c.id == raw["id"] for c in cities):
            raise ValueError(f"[[city]] #{k + 1}: a second city {raw['id']!r}")
        cities.append(City(raw["id"], raw["name_zh"]))
    if home is None:
        if len(cities) > 1:
            raise ValueError("the policy file has several [[city]] but no home_city")
        home = cities[0].id
    ids = [c.id for c in cities]
    if home not in ids:
        raise ValueError(f"home_city {home!r} is not one of the [[city]] ids {ids}")
    return tuple(sorted(cities, key=lambda c: c.id != home))


def parse_policy(doc: Mapping[str, Any]) -> PolicyBook:
    """Builds a :class:`PolicyBook` from the parsed TOML document, checking what it can: every
    version's city is a ``[[city]]``, every city has a version, a town belongs to one city only."""
    cities = _cities(doc)
    home = cities[0].id
    known = [c.id for c in cities]
    by_city: dict[str, list[PolicyVersion]] = {c: [] for c in known}
    for raw in doc.get("version", []):
        city = raw.get("city", home)
        if city not in by_city:
            raise ValueError(f"policy version {raw.get('version')}: unknown city {city!r}; the [[city]] ids are "
                             f"{known}")
        v = PolicyVersion(
            version=str(raw["version"]), effective_from=_day(raw["effective_from"], f"policy version {raw['version']}"),
            dibao_line=float(raw["dibao_line"]), edge_multiple=float(raw["edge_multiple"]),
            pdi_urban=float(raw["pdi_urban"]), pdi_rural=float(raw["pdi_rural"]), pdi_all=float(raw["pdi_all"]),
            rigid_share=float(raw["rigid_share"]), towns=tuple(raw["towns"]), city=city,
        )
        if v.dibao_line <= 0 or v.edge_multiple < 1 or not v.towns:
            raise ValueError(f"policy version {v.version}: implausible parameters")
        if any(w.effective_from == v.effective_from for w in by_city[city]):
            raise ValueError(f"policy version {v.version}: a second version of {city} effective from "
                             f"{v.effective_from.isoformat()}")
        by_city[city].append(v)
    if not any(by_city.values()):
        raise ValueError("the policy file has no [[version]]")
    if empty := [c for c, vs in by_city.items() if not vs]:
        raise ValueError(f"city {empty[0]!r} has no [[version]] of its parameters")
    owner: dict[str, str] = {}
    for city, versions in by_city.items():
        for v in versions:
            for town in v.towns:
                if owner.setdefault(town, city) != city:
                    raise ValueError(f"town {town!r} is listed for two cities, {owner[town]} and {city}: a town "
                                     f"belongs to one city only")
    return PolicyBook(by_city={c: tuple(sorted(vs, key=lambda v: v.effective_from)) for c, vs in by_city.items()},
                      cities=cities, rules={k: float(x) for k, x in doc.get("rules", {}).items()})
