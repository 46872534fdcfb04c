"""Training snapshots are point in time: the persons table holds each person's *latest* employment
status, so a snapshot as of an earlier date reads the status as it stood then (a job lost later is
not yet lost), and its features (``n_unemployed``) with it."""

from __future__ import annotations

import pandas as pd

from training.dataset import build_snapshots, employment_as_of, last_wage_month

AS_OF = pd.Timestamp("2025-06-30")


def test_employment_as_of_a_date_hides_later_job_losses(city_tables):
    last_wage = last_wage_month(city_tables)
    p = city_tables.persons
    m = AS_OF.year * 12 + AS_OF.month - 1
    later = set(last_wage.index[last_wage >= m])  # still paid in June 2025: lost the job after
    assert later and later <= set(p.loc[p["employment"] == "unemployed", "person_id"])
    fixed = employment_as_of(city_tables, AS_OF, last_wage).persons
    changed = p["employment"].to_numpy() != fixed["employment"].to_numpy()
    assert set(p.loc[changed, "person_id"]) == later and (fixed.loc[changed, "employment"] == "employed").all()
    assert (p["employment"] == "unemployed").sum() > 0  # the city's own table is left as it was
    # the end of the span: nobody was paid after it, nothing changes
    assert employment_as_of(city_tables, pd.Timestamp("2026-10-31"), last_wage) is city_tables


def test_a_snapshot_counts_the_unemployed_as_they_were_at_its_date(city_tables, policy):
    at_date = build_snapshots(city_tables, [AS_OF], policy, "unemployment_poverty", progress=False)
    latest = build_snapshots(city_tables, [AS_OF], policy, "unemployment_poverty", progress=False,
                             employment_at_date=False)
    later = set(last_wage_month(city_tables).pipe(lambda s: s[s >= AS_OF.year * 12 + AS_OF.month - 1]).index)
    households = set(city_tables.persons.loc[city_tables.persons["person_id"].isin(later), "household_id"])
    fewer = at_date["n_unemployed"] < latest["n_unemployed"]
    assert set(at_date.index[fewer]) == households
    same = ~at_date.index.isin(list(households))
    pd.testing.assert_frame_equal(at_date.loc[same], latest.loc[same])
