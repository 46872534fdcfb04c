"""The five risks: per-risk schemas and directions, twins that differ by one risk's cause, and the
trained models of the other four findings against their own rules.

Over 400 lines because the twin pairs (some 150 lines of generators) serve two sets of checks, the
schemas' without a model and the trained models', which are kept beside the pairs they share.

A twin pair is one household with the cause and its otherwise identical twin without it (a member's
disability grade, a job lost, an elderly person alone, the children's parents without work or
income, a cancer bill). The service is tried on such pairs from generators it has never seen, so the
rise must hold by construction: ``test_every_feature_a_twin_moves_is_constrained_the_right_way``
checks, without any model, that each feature a pair moves is one the risk's schema constrains, in the
direction that makes the cause raise the risk. The trained models are then checked on the same pairs
(``slow``), and their boosters on every constrained feature over real households.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from features.catalog import BY_ID, FEATURE_IDS, RISK_DIRECTIONS, RISK_EXCLUDED, UNREPORTED_BY, risk_feature_ids
from features.io import load_policy_book
from models.lgbm import lgbm_params
from models.schema import FeatureSchema, FeatureSchemaError
from tests.factories import bundle, claim, features_of, member, monthly_income, months_back
from training.pipeline import RISKS

POLICY = load_policy_book()
T = "2026-06-30"
MONTHS = months_back(T, 12)
OTHER_RISKS = tuple(r for r in RISKS if r != "illness_poverty")


# ---------------------------------------------------------------------------------------------------
# Twins
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Twins:
    risk: str
    name: str
    cause: dict  # the household with the cause
    twin: dict  # the otherwise identical household without it
    plain: bool  # a household that plainly has the cause: its probability must rise, not merely not fall


def _family(*, head_emp: str = "employed", head_wage: float | None = 3000.0, spouse: dict | None = None,
            spouse_wage: float | None = None, children: int = 1, assets: float = 20000.0, claims=(),
            extra_income=()) -> dict:
    """Head 45, spouse 43 (no work by default), ``children`` under 16; wages every month of the year."""
    members = [member("P1", "head", "1981-03-02", employment=head_emp),
               member("P2", "spouse", "1983-08-10", sex="F", **(spouse or {"employment": "other"}))]
    members += [member(f"C{i}", "child", f"{2014 + 2 * i}-05-01", employment="student") for i in range(children)]
    income = monthly_income(MONTHS, head_wage, "P1", "wage") if head_wage else []
    income += monthly_income(MONTHS, spouse_wage, "P2", "wage") if spouse_wage else []
    return bundle(members=members, income=[*income, *extra_income], claims=list(claims), financial_assets=assets,
                  hukou_type="urban", town="yangshe")


def _with(b: dict, **member_over) -> dict:
    """``b`` with one member changed: ``person_id`` names it, the rest are fields to set."""
    b = copy.deepcopy(b)
    pid = member_over.pop("person_id")
    for m in b["members"]:
        if m["person_id"] == pid:
            m.update(member_over)
    return b


def _without_income(b: dict, person_id: str, months: list[str] | None = None, source: str = "wage") -> dict:
    b = copy.deepcopy(b)
    b["income"] = [r for r in b["income"] if not (r["person_id"] == person_id and r["source"] == source
                                                  and (months is None or r["month"] in months))]
    return b


def _elder(birth_date: str = "1944-02-01", **over) -> dict:
    return member("P1", "head", birth_date, **{"employment": "retired", **over})


def _elderly_home(members: list[dict], pension: float = 2600.0, extra_income=(), claims=()) -> dict:
    income = [r for m in members if m["employment"] == "retired"
              for r in monthly_income(MONTHS, pension, m["person_id"], "pension")]
    return bundle(members=members, income=[*income, *extra_income], claims=list(claims), financial_assets=60000.0)


def _cancer(scale: float = 1.0) -> list[dict]:
    stay = claim("K1", "2025-11-10", 30000 * scale, setting="inpatient", diagnosis_group="cancer",
                 fund_paid=60000 * scale, inpatient_days=15)
    care = [claim(f"K{2 + m}", f"2026-0{m}-15", 2000 * scale, setting="special_outpatient", diagnosis_group="cancer",
                  fund_paid=4000 * scale) for m in range(1, 7)]
    return [stay, *care]


def _pairs() -> list[Twins]:
    out: list[Twins] = []
    # -- disability_poverty: one member's disability grade (and what usually comes with it)
    for wage, plain in ((3000.0, True), (8000.0, False), (30000.0, False)):
        base = _family(head_wage=wage)
        for grade in (1, 2):
            out.append(Twins("disability_poverty", f"spouse grade {grade} vs 0, head wage {wage:.0f}",
                             _with(base, person_id="P2", disability_grade=grade), base, plain))
        for grade in (3, 4):
            out.append(Twins("disability_poverty", f"spouse grade {grade} vs 0, head wage {wage:.0f}",
                             _with(base, person_id="P2", disability_grade=grade), base, False))
        working_spouse = _family(head_wage=wage, spouse={"employment": "employed"}, spouse_wage=2500.0)
        disabled = _without_income(_with(working_spouse, person_id="P2", disability_grade=1,
                                         employment="unable_to_work"), "P2")
        out.append(Twins("disability_poverty", f"spouse grade 1 and unable to work vs working, head wage {wage:.0f}",
                         disabled, working_spouse, plain))
    # -- unemployment_poverty: the earner's job
    for wage, plain in ((4000.0, True), (7000.0, True), (40000.0, False)):
        base = _family(head_wage=wage)
        lost = _with(base, person_id="P1", employment="unemployed")
        # Only the status differs: never lower by construction, but with wages still paid every month
        # the synthetic cities hold almost no findings to learn a rise from (flat in one of three).
        out.append(Twins("unemployment_poverty", f"head unemployed vs employed, same income, wage {wage:.0f}",
                         lost, base, False))
        benefit = _without_income(lost, "P1", MONTHS[-4:])
        benefit["income"] += monthly_income(MONTHS[-3:], 2100.0, "P1", "unemployment_benefit")
        out.append(Twins("unemployment_poverty", f"head lost the job 4 months ago, on benefit, wage {wage:.0f}",
                         benefit, base, plain))
        out.append(Twins("unemployment_poverty", f"head lost the job 6 months ago, no benefit, wage {wage:.0f}",
                         _without_income(lost, "P1", MONTHS[-6:]), base, plain))
        two = _family(head_wage=wage, spouse={"employment": "employed"}, spouse_wage=3000.0)
        out.append(Twins("unemployment_poverty", f"spouse lost the job 3 months ago, head wage {wage:.0f}",
                         _without_income(_with(two, person_id="P2", employment="unemployed"), "P2", MONTHS[-3:]),
                         two, False))
    # -- elderly_care_need: an elderly person alone (or only elderly at home)
    for pension, plain in ((1200.0, True), (2600.0, True), (9000.0, False)):
        alone = _elderly_home([_elder()], pension)
        out.append(Twins("elderly_care_need", f"alone at 82 vs at 45, pension {pension:.0f}", alone,
                         _elderly_home([_elder("1981-02-01")], pension), plain))
        out.append(Twins("elderly_care_need", f"alone at 82 vs at 65, pension {pension:.0f}", alone,
                         _elderly_home([_elder("1961-02-01")], pension), plain))
        carer = member("P2", "child", "1976-04-04", employment="employed")
        out.append(Twins("elderly_care_need", f"alone at 82 vs with a working son, pension {pension:.0f}", alone,
                         _elderly_home([_elder(), carer], pension,
                                       extra_income=monthly_income(MONTHS, max(6000.0, pension), "P2")), plain))
        couple = _elderly_home([_elder(), member("P2", "spouse", "1946-09-09", sex="F", employment="retired")],
                               pension)
        younger = _elderly_home([_elder("1976-02-01"), member("P2", "spouse", "1978-09-09", sex="F",
                                                               employment="retired")], pension)
        out.append(Twins("elderly_care_need", f"couple of 82 and 79 vs 50 and 47, pension {pension:.0f}", couple,
                         younger, plain))
        out.append(Twins("elderly_care_need", f"alone at 82, severely disabled vs not, pension {pension:.0f}",
                         _with(alone, person_id="P1", disability_grade=2), alone, False))
    # -- child_in_difficulty: children whose parents have no work or no income
    for wages, plain in (((3000.0, 2000.0), True), ((6000.0, 4000.0), True), ((30000.0, 20000.0), False)):
        working = _family(head_wage=wages[0], spouse={"employment": "employed"}, spouse_wage=wages[1], children=2)
        jobless = _with(_with(working, person_id="P1", employment="unemployed"), person_id="P2",
                        employment="unemployed")
        out.append(Twins("child_in_difficulty", f"parents unemployed with no income vs working, wages {wages}",
                         _without_income(_without_income(jobless, "P1"), "P2"), working, plain))
        out.append(Twins("child_in_difficulty", f"parents unemployed, same income rows, wages {wages}", jobless,
                         working, False))
        unable = _with(_with(working, person_id="P1", employment="unable_to_work"), person_id="P2", employment="other")
        out.append(Twins("child_in_difficulty", f"parents unable to work with no income, wages {wages}",
                         _without_income(_without_income(unable, "P1"), "P2"), working, plain))
        single = _family(head_wage=wages[0], children=1)
        out.append(Twins("child_in_difficulty", f"single earner unemployed with no income, wage {wages[0]:.0f}",
                         _without_income(_with(single, person_id="P1", employment="unemployed"), "P1"), single, plain))
    # -- every risk but illness: no income reported at all reads as no income, never as "unknown, so fine"
    for risk in ("disability_poverty", "unemployment_poverty", "elderly_care_need", "child_in_difficulty"):
        low = _with(_family(head_wage=1500.0), person_id="P1", employment="unemployed")
        out.append(Twins(risk, "no income at all vs low wages", _without_income(low, "P1"), low, False))
    # -- illness_poverty: a big inpatient cancer bill vs none
    for wage, plain in ((2000.0, True), (4000.0, True)):
        base = _family(head_wage=wage, head_emp="farmer", children=0)
        out.append(Twins("illness_poverty", f"cancer bill vs none, income {wage:.0f}", _with_claims(base, _cancer()),
                         base, plain))
    return out


def _with_claims(b: dict, claims: list[dict]) -> dict:
    b = copy.deepcopy(b)
    b["claims"] = [*b["claims"], *claims]
    return b


PAIRS = _pairs()
PAIR_IDS = [f"{p.risk}: {p.name}" for p in PAIRS]



# ---------------------------------------------------------------------------------------------------
# Schemas, directions, parameters (no training)
# ---------------------------------------------------------------------------------------------------


def test_every_risk_of_the_contract_has_a_schema():
    from features.contract import FINDINGS

    assert set(RISKS) == set(FINDINGS) - {"not_in_need"} == set(RISK_DIRECTIONS) == set(RISK_EXCLUDED)
    for risk in RISKS:
        schema = FeatureSchema.for_risk(risk)
        assert schema.risk == risk
        assert schema.ids == [f for f in FEATURE_IDS if f not in RISK_EXCLUDED[risk]] == list(risk_feature_ids(risk))


def test_the_illness_schema_is_the_catalog_as_before():
    schema = FeatureSchema.for_risk("illness_poverty")
    assert schema.ids == list(FEATURE_IDS)
    assert schema.monotone_constraints == [BY_ID[f].direction for f in FEATURE_IDS]
    assert {e.direction_source for e in schema.entries} == {"policy"}


@pytest.mark.parametrize("risk", RISKS)
def test_a_risk_keeps_every_policy_direction_and_adds_its_own(risk):
    schema = FeatureSchema.for_risk(risk)
    for e in schema.entries:
        policy = BY_ID[e.id].direction
        if policy != 0:
            assert (e.direction, e.direction_source) == (policy, "policy"), e.id
        elif e.id in RISK_DIRECTIONS[risk]:
            assert (e.direction, e.direction_source) == (RISK_DIRECTIONS[risk][e.id], "risk"), e.id
        else:
            assert (e.direction, e.direction_source) == (0, "policy"), e.id


def test_each_risk_constrains_its_cause():
    d = {r: FeatureSchema.for_risk(r).directions for r in RISKS}
    assert d["illness_poverty"]["oop_12m"] == d["illness_poverty"]["max_stay_oop_12m"] == 1
    assert d["disability_poverty"]["n_disabled"] == d["disability_poverty"]["n_severe_disabled"] == 1
    assert d["unemployment_poverty"]["n_unemployed"] == d["unemployment_poverty"]["n_working_age_not_working"] == 1
    assert d["unemployment_poverty"]["n_earners"] == -1
    for f in ("elderly_only", "lives_alone_elderly", "oldest_age", "n_elderly", "n_elderly_80plus", "head_age"):
        assert d["elderly_care_need"][f] == 1, f
    assert d["child_in_difficulty"]["n_minors_no_earner"] == d["child_in_difficulty"]["n_minors"] == 1
    assert d["child_in_difficulty"]["n_earners"] == -1
    for risk in RISKS:  # policy's directions hold for every risk
        assert d[risk]["income_12m_per_capita_month"] == -1
        assert d[risk]["oop_12m"] == 1


def test_a_risk_may_not_override_policy(monkeypatch):
    import features.catalog as catalog

    monkeypatch.setitem(catalog.RISK_DIRECTIONS, "elderly_care_need",
                        {**catalog.RISK_DIRECTIONS["elderly_care_need"], "income_12m_per_capita_month": 1})
    with pytest.raises(ValueError, match="policy"):
        catalog._check_risk_tables()
    monkeypatch.setitem(catalog.RISK_DIRECTIONS, "elderly_care_need", {"no_such_feature": 1})
    with pytest.raises(ValueError, match="unknown"):
        catalog._check_risk_tables()


def test_schema_json_round_trips_with_its_risk_and_sources():
    schema = FeatureSchema.for_risk("child_in_difficulty")
    doc = json.loads(schema.to_json())
    assert doc["schema_version"] == 2 and doc["risk"] == "child_in_difficulty"
    by_id = {e["id"]: e for e in doc["features"]}
    assert by_id["n_minors_no_earner"]["direction"] == 1
    assert by_id["n_minors_no_earner"]["direction_source"] == "risk"
    assert by_id["income_12m_per_capita_month"]["direction_source"] == "policy"
    assert FeatureSchema.from_json(schema.to_json()) == schema


def test_a_version_1_schema_still_loads():
    """Models logged before per-risk directions: no risk, every direction the catalog's."""
    old = {"schema_version": 1, "features": [
        {"id": "oop_12m", "label_zh": "近12个月自付医疗费用", "unit": "元", "dtype": "float64", "minimum": 0.0,
         "maximum": None, "direction": 1},
        {"id": "n_members", "label_zh": "家庭人口数", "unit": "人", "dtype": "float64", "minimum": 1.0,
         "maximum": 50.0, "direction": 0}]}
    schema = FeatureSchema.from_json(json.dumps(old))
    assert schema.risk is None
    assert schema.ids == ["oop_12m", "n_members"] and schema.monotone_constraints == [1, 0]
    assert {e.direction_source for e in schema.entries} == {"policy"}
    with pytest.raises(FeatureSchemaError, match="version"):
        FeatureSchema.from_json(json.dumps({**old, "schema_version": 3}))


def test_lgbm_params_carry_the_risk_settings_and_every_model_learns_its_missing_values():
    for risk in RISKS:
        p = lgbm_params(FeatureSchema.for_risk(risk), seed=3)
        assert p["seed"] == 3 and p["monotone_constraints"] == FeatureSchema.for_risk(risk).monotone_constraints
        assert "use_missing" not in p and "zero_as_missing" not in p, risk
    assert lgbm_params(FeatureSchema.for_risk("disability_poverty"))["learning_rate"] == 0.02
    assert lgbm_params(FeatureSchema.from_catalog()) == lgbm_params(FeatureSchema.from_catalog(), **{})


@pytest.mark.parametrize("risk", RISKS)
def test_no_income_reported_never_lowers_any_risk(risk):
    """The indicators never lower risk, and no risk constrains an income figure whose 0 stands for
    nothing reported the other way (0 would then be the safe end)."""
    d = FeatureSchema.for_risk(risk).directions
    assert d["no_income_reported_12m"] == d["no_income_reported_3m"] == 1
    for fid, flag in UNREPORTED_BY.items():
        assert BY_ID[fid].group == "income" and BY_ID[flag].unit == "是否", (fid, flag)
        assert d.get(fid, 0) in (-1, 0), fid


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_every_feature_a_twin_moves_is_constrained_the_right_way(pair):
    """By construction: the cause moves only features whose constraint says it cannot lower the risk."""
    schema = FeatureSchema.for_risk(pair.risk)
    cause, twin = (features_of(b, POLICY)[schema.ids] for b in (pair.cause, pair.twin))
    # every model learns where a missing value goes, and what is learned is not constrained
    differ = cause.index[(cause.isna() != twin.isna()).to_numpy()].tolist()
    assert not differ, f"a twin pair must not differ in which features are missing: {differ}"
    cause, twin = cause.fillna(0.0), twin.fillna(0.0)
    moved = cause.index[(cause != twin).to_numpy()]
    assert len(moved), "the twins do not differ"
    wrong = {f: (schema.directions[f], float(twin[f]), float(cause[f])) for f in moved
             if schema.directions[f] * np.sign(cause[f] - twin[f]) <= 0}
    assert not wrong, f"features moved against or without a constraint (direction, twin, cause): {wrong}"


def test_twins_differ_only_in_the_household_and_not_in_the_town():
    """The pairs are built on one template, so the comparisons above are between true twins."""
    for p in PAIRS:
        assert p.cause["household"] == p.twin["household"]
        assert p.cause["as_of"] == p.twin["as_of"] == T


# ---------------------------------------------------------------------------------------------------
# Trained models (the test city, seed 7; illness from the shared ``champion`` fixture)
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(risk_champions):
    return risk_champions


def _p(model, b: dict) -> float:
    frame = features_of(b, POLICY).to_frame().T
    return float(model.predict_frame(frame)["probability"].iloc[0])


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_the_probability_rises_with_the_cause(models, pair):
    model = models[pair.risk]
    with_cause, without = _p(model, pair.cause), _p(model, pair.twin)
    assert with_cause >= without - 1e-12, (with_cause, without)
    if pair.plain:
        assert with_cause > without, (with_cause, without)


@pytest.mark.slow
@pytest.mark.parametrize("risk", OTHER_RISKS)
def test_each_model_beats_its_own_best_rule_at_the_same_capacity(trained_risks, risk):
    result = trained_risks[risk]
    cmp = result.comparison
    rules = cmp.drop(index="model")
    assert len(rules) >= 1 and all(i.startswith("rule:") for i in rules.index)
    assert result.metrics["test_positives"] >= 10
    assert cmp.loc["model", "recall"] > rules["recall"].max(), cmp
    assert cmp.loc["model", "roc_auc"] > 0.85, cmp


@pytest.mark.slow
@pytest.mark.parametrize("risk", OTHER_RISKS)
def test_each_model_is_registered_with_its_schema_and_constraints(models, trained_risks, risk):
    model = models[risk]
    assert model.risk == risk and trained_risks[risk].version is not None
    assert model.schema == FeatureSchema.for_risk(risk)
    assert model.booster.feature_name() == model.schema.ids
    assert model.booster.dump_model()["monotone_constraints"] == model.schema.monotone_constraints


def _city_rows(city_tables, model, n: int = 150) -> np.ndarray:
    from features.build import build_features

    feats = build_features(city_tables, "2026-03-31", POLICY)
    return model.matrix(feats.sample(n=n, random_state=0))


@pytest.mark.slow
@pytest.mark.parametrize("risk", RISKS)
def test_each_booster_is_monotone_in_every_constrained_feature(models, city_tables, risk):
    """Over real households: sweep each constrained feature and read the raw score."""
    model = models[risk]
    x = _city_rows(city_tables, model)
    for j, e in enumerate(model.schema.entries):
        if e.direction == 0:
            continue
        col = x[:, j][~np.isnan(x[:, j])]
        if not len(col):
            continue
        scores = []
        grid = np.linspace(col.min(), col.max(), 7)
        for v in grid:
            xv = x.copy()
            xv[:, j] = v
            scores.append(model.raw_score(xv))
        diffs = np.diff(np.column_stack(scores), axis=1) * e.direction
        assert (diffs >= -1e-9).all(), (e.id, e.direction, diffs.min())


@pytest.mark.slow
@pytest.mark.parametrize("risk", RISKS)
def test_a_missing_value_is_learned_and_explanations_stay_exact(models, city_tables, risk):
    """No model reads NaN as 0 any more, and the fast explanations follow each split's learned
    direction for it as LightGBM's own do."""
    model = models[risk]
    assert "[use_missing: 1]" in model.booster.model_to_string()
    x = _city_rows(city_tables, model, n=60)
    income = [j for j, f in enumerate(model.schema.ids) if f.startswith("income_") or f == "wage_share_12m"]
    missing = x.copy()
    missing[:, income] = np.nan
    contrib = np.asarray(model.booster.predict(missing, pred_contrib=True))
    np.testing.assert_allclose(contrib.sum(axis=1), model.raw_score(missing), atol=1e-9)
    np.testing.assert_allclose(model.contributions(missing), contrib, atol=1e-9)


# ---------------------------------------------------------------------------------------------------
# Training several risks at once
# ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_relabel_gives_the_snapshots_built_for_that_risk(city_tables, city_dir, policy):
    from features.io import read_frame
    from training.dataset import build_snapshots, data_span, plan_split, relabel

    truth = read_frame(city_dir, "truth")
    split = plan_split(*data_span(city_tables))
    dates = [split.validation, split.test]
    snaps = build_snapshots(city_tables, dates, policy, "illness_poverty", truth, progress=False)
    for risk in ("elderly_care_need", "child_in_difficulty"):
        expected = build_snapshots(city_tables, dates, policy, risk, truth, progress=False)
        pd.testing.assert_frame_equal(relabel(snaps, city_tables.verifications, risk, truth), expected)
    no_truth = build_snapshots(city_tables, dates, policy, "illness_poverty", None, progress=False)
    assert "truth" not in relabel(no_truth, city_tables.verifications, "disability_poverty")


@pytest.mark.parametrize("arg", ["nonsense", "illness_poverty,illness_poverty", "", "all,illness_poverty"])
def test_the_cli_refuses_unknown_or_repeated_risks(arg, capsys):
    from relief_risk.cli import main

    assert main(["train", "--data", "nowhere", "--risk", arg]) == 2
    assert "--risk" in capsys.readouterr().err


def test_train_all_refuses_unknown_risks():
    from training.pipeline import TrainConfig, train_all

    with pytest.raises(ValueError, match="among"):
        train_all(TrainConfig(data_dir="nowhere"), ["illness_poverty", "not_in_need"])


@pytest.mark.slow
def test_train_all_trained_each_risk_in_its_own_run(trained_risks):
    runs = {r.run_id for r in trained_risks.values()}
    assert len(runs) == len(trained_risks) == len(OTHER_RISKS)
    for risk, result in trained_risks.items():
        assert result.model_name == risk
        assert result.timings["features_s"] == trained_risks[OTHER_RISKS[0]].timings["features_s"]  # built once
