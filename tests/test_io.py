"""Reading and writing raw tables, and the boundary check on whole tables (exact messages)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from features.io import check_tables, read_tables, write_tables
from features.policy import PolicyBook
from features.tables import Tables, make_tables
from tests.factories import assistance_row, bundle, claim, income_row, member, tables_of, with_person_ids

VISITS = [{"household_id": "H1", "visited_on": "2026-05-01", "finding": "illness_poverty"},
          {"household_id": "H1", "visited_on": "2026-05-01", "finding": "disability_poverty"}]


def _tables(verifications=VISITS) -> Tables:
    h1 = bundle("H1", members=[member(), member("P2", "spouse", "1965-12-31", sex="F", disability_grade=2)],
                income=[income_row("2026-05", 1500.0), income_row("2026-06", 1234.56, "P2", "pension")],
                assistance=[assistance_row("dibao", "2024-01-01", None, 1100),
                            assistance_row("temporary", "2025-03-01", "2025-03-31", 2000.5)])
    h2 = with_person_ids(bundle("H2", claims=[claim("C2", "2026-01-02", 0.1, fund_paid=0.2, setting="pharmacy")],
                                town="leyu"), {"P1": "007"})
    return tables_of(h1, h2, verifications=verifications)


def _frames(tables: Tables) -> dict[str, pd.DataFrame]:
    return {f.name: getattr(tables, f.name) for f in dataclasses.fields(tables)}


def _assert_tables_equal(a: Tables, b: Tables) -> None:
    for name, frame in _frames(a).items():
        pd.testing.assert_frame_equal(getattr(b, name), frame, check_exact=True, obj=name)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("verifications", [VISITS, []])
def test_write_read_round_trip(tmp_path, policy: PolicyBook, fmt, verifications):
    tables = _tables(verifications)
    written = write_tables(_frames(tables), tmp_path, fmt=fmt)
    assert sorted(p.name for p in written) == sorted(f"{n}.{fmt}" for n in _frames(tables))
    _assert_tables_equal(tables, read_tables(tmp_path, policy=policy))


def test_verifications_may_be_absent_the_rest_may_not(tmp_path, policy):
    frames = _frames(_tables())
    write_tables({k: v for k, v in frames.items() if k != "verifications"}, tmp_path, fmt="csv")
    assert read_tables(tmp_path, policy=policy).verifications.empty
    (tmp_path / "claims.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"no claims\.parquet or claims\.csv$"):
        read_tables(tmp_path, policy=policy)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^unknown format 'json'; use parquet or csv$"):
        write_tables(_frames(_tables()), tmp_path, fmt="json")


def test_valid_tables_have_no_problems(policy):
    assert check_tables(_tables(), towns=policy.all_towns) == []


def _broken(table: str, change) -> Tables:
    frames = {k: v.copy() for k, v in _frames(_tables()).items()}
    frames[table] = change(frames[table])
    return make_tables(**{k: v.drop(columns=["month_index"], errors="ignore") for k, v in frames.items()})


def _set(row: int, column: str, value):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row, column] = value
        return frame
    return change


SETTINGS = "['outpatient', 'inpatient', 'special_outpatient', 'pharmacy']"


@pytest.mark.parametrize(("table", "change", "message"), [
    ("claims", _set(0, "total_cost", 68000.01), "claims: 1 rows where total_cost != the sum of its parts"),
    ("claims", _set(1, "setting", "emergency"), f"claims.setting: 1 values outside {SETTINGS}"),
    ("income", _set(0, "amount", -1.0), "income.amount: negative, missing or non-finite values"),
    ("claims", _set(1, "claim_id", "C1"), "claims.claim_id: duplicated keys"),
    ("persons", _set(0, "relation", "other"), "persons: each household needs exactly one head"),
    ("persons", _set(1, "relation", "head"), "persons: each household needs exactly one head"),
    ("income", _set(1, "person_id", "P404"), "income.person_id: persons not in the persons table"),
    ("claims", _set(0, "person_id", "P404"), "claims.person_id: persons not in the persons table"),
    ("persons", _set(1, "disability_grade", 5), "persons.disability_grade: outside 0-4"),
    ("households", _set(0, "town", "atlantis"), "households.town: 1 unknown town codes"),
])
def test_check_tables_reports_exactly_what_is_broken(policy, table, change, message):
    assert check_tables(_broken(table, change), towns=policy.all_towns) == [message]


def test_read_tables_refuses_bad_files_with_the_problems(tmp_path, policy):
    write_tables(_frames(_broken("claims", _set(0, "total_cost", 1.0))), tmp_path, fmt="csv")
    with pytest.raises(ValueError) as err:
        read_tables(tmp_path, policy=policy)
    assert str(err.value) == "bad input tables:\n  claims: 1 rows where total_cost != the sum of its parts"
    assert read_tables(tmp_path, check=False).claims.loc[0, "total_cost"] == 1.0


# A required date that is missing would make its row vanish from the features (cut_to keeps only rows
# dated <= T, and NaT <= T is False): the boundary check must refuse it instead.
@pytest.mark.parametrize(("table", "column"), [
    ("claims", "service_date"), ("persons", "birth_date"), ("assistance", "start_date"),
    ("verifications", "visited_on"),
])
def test_check_tables_reports_a_missing_required_date(policy, table, column):
    assert check_tables(_broken(table, _set(0, column, None)), towns=policy.all_towns) == [
        f"{table}.{column}: 1 missing dates"]


def test_check_tables_reports_an_impossible_month(policy):
    assert check_tables(_broken("income", _set(0, "month", "2026-13")), towns=policy.all_towns) == [
        "income.month: 1 values not a YYYY-MM month"]


def test_a_missing_count_in_a_file_is_reported_not_read_as_zero(tmp_path, policy):
    frames = {name: getattr(tables_of(bundle()), name) for name in
              ("households", "persons", "income", "claims", "assistance", "verifications")}
    frames["claims"] = frames["claims"].astype({"inpatient_days": "float64"})
    frames["claims"].loc[0, "inpatient_days"] = float("nan")
    write_tables(frames, tmp_path, fmt="csv")
    with pytest.raises(ValueError) as err:
        read_tables(tmp_path, policy=policy)
    assert "claims.inpatient_days: negative, missing or non-finite values" in str(err.value)
