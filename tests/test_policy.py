"""Dated policy parameters: which version is in force on a date, and the packaged file."""

from __future__ import annotations

import datetime as dt

import pytest

from features.io import load_policy_book
from features.policy import parse_policy
from features.tables import TOWNS_DEFAULT


def _version(version: str, effective_from: str, dibao_line: float, **over) -> dict:
    return {"version": version, "effective_from": effective_from, "dibao_line": dibao_line, "edge_multiple": 1.5,
            "pdi_urban": 80000, "pdi_rural": 45000, "pdi_all": 70000, "rigid_share": 0.6, "towns": ["leyu"],
            **over}


# listed out of order on purpose: the book sorts by effective_from
BOOK = parse_policy({"version": [_version("b", "2025-01-01", 1100), _version("a", "2024-01-01", 1050)],
                     "rules": {"single_stay_general": 10000}})


@pytest.mark.parametrize(("day", "version"), [
    (dt.date(2024, 1, 1), "a"), (dt.date(2024, 12, 31), "a"), (dt.date(2025, 1, 1), "b"),
    (dt.date(2030, 1, 1), "b"),
])
def test_at_picks_the_version_in_force(day, version):
    assert BOOK.at(day).version == version


def test_at_before_the_first_version_raises():
    with pytest.raises(ValueError, match=r"^no policy parameters in force on 2023-12-31; "
                                         r"the first version starts 2024-01-01$"):
        BOOK.at(dt.date(2023, 12, 31))


def test_parsed_fields():
    v = BOOK.at(dt.date(2025, 1, 1))
    assert (v.effective_from, v.dibao_line, v.edge_line, v.towns) == (dt.date(2025, 1, 1), 1100.0, 1650.0,
                                                                      ("leyu",))
    assert BOOK.latest.version == "b"
    assert BOOK.rules == {"single_stay_general": 10000.0}


@pytest.mark.parametrize(("doc", "message"), [
    ({}, r"^the policy file has no \[\[version\]\]$"),
    ({"version": [_version("x", "2024-01-01", 0)]}, r"^policy version x: implausible parameters$"),
    ({"version": [_version("x", "2024-01-01", 1000, edge_multiple=0.9)]}, r"^policy version x: implausible"),
    ({"version": [_version("x", "2024-01-01", 1000, towns=[])]}, r"^policy version x: implausible"),
])
def test_implausible_files_are_refused(doc, message):
    with pytest.raises(ValueError, match=message):
        parse_policy(doc)


def test_the_packaged_file_parses():
    book = load_policy_book()
    assert [v.version for v in book.versions] == ["2000.backfill", "2024.1", "2025.1"]
    assert book.at(dt.date(2024, 12, 31)).dibao_line == 1050.0
    assert book.at(dt.date(2025, 1, 1)).dibao_line == 1100.0
    assert book.at(dt.date(2025, 1, 1)).edge_line == 1650.0
    assert book.at(dt.date(2000, 1, 1)).version == "2000.backfill"
    assert book.home_city == "zhangjiagang" and book.city_ids == ("zhangjiagang", "changshu")
    assert book.towns_of("zhangjiagang", dt.date(2025, 1, 1)) == TOWNS_DEFAULT
    assert book.all_towns == frozenset(TOWNS_DEFAULT) | book.city_towns["changshu"]
    assert book.at(dt.date(2025, 1, 1), "changshu").dibao_line == 1000.0
    assert book.rules["catastrophic_capacity_share"] == 0.4
    with pytest.raises(ValueError, match="^no policy parameters in force on 1999-12-31"):
        book.at(dt.date(1999, 12, 31))
