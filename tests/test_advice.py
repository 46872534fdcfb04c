"""The advice beside the scores (domain/advice.py): the programmes the policy calculator finds a
household likely eligible for carry their Chinese names beside their ids, in the same order, and the
score response's model documents them."""

from __future__ import annotations

import pytest

from domain.advice import Advisor
from features.build import build_features
from features.tables import tables_from_bundle
from serving.schemas import ScoreResponse
from tests.factories import AS_OF, bundle, member, monthly_income, months_back


@pytest.fixture(scope="module")
def advisor(policy):
    return Advisor.load(policy=policy)


def advise(advisor, b):
    tables = tables_from_bundle(b)
    return advisor.advise(tables, build_features(tables, AS_OF, advisor.policy), AS_OF, None)


def test_eligible_programmes_have_chinese_labels_beside_their_ids(advisor):
    # one member of 65 living on 500 yuan a month, one home, no car, receiving nothing
    alone = bundle(members=[member()], income=monthly_income(months_back(AS_OF, 12), 500), claims=[])
    advice = advise(advisor, alone)
    assert advice.eligible_programs == ["dibao", "dibao_edge_expenditure", "expenditure_hardship", "tekun"]
    assert advice.eligible_program_labels == ["最低生活保障（低保）", "低保边缘（支出型）", "支出型困难家庭",
                                              "特困人员救助供养"]
    fields = advice.response_fields()
    assert list(fields) == ["lists", "eligible_programs", "eligible_program_labels", "warm_list"]
    assert fields["eligible_program_labels"] == advice.eligible_program_labels


def test_no_eligible_programme_gives_two_empty_lists(advisor):
    well_off = bundle(members=[member(birth_date="1980-01-01", employment="employed")],
                      income=monthly_income(months_back(AS_OF, 12), 9000), claims=[])
    advice = advise(advisor, well_off)
    assert advice.eligible_programs == [] and advice.eligible_program_labels == []


def test_the_score_response_model_documents_the_labels():
    field = ScoreResponse.model_fields["eligible_program_labels"]
    assert field.default == [] and "eligible_programs" in (field.description or "")
    shown = ScoreResponse.model_validate({"request_id": "r", "household_id": "H1", "as_of": AS_OF, "scores": [],
                                          "eligible_programs": ["dibao"],
                                          "eligible_program_labels": ["最低生活保障（低保）"]})
    assert shown.eligible_program_labels == ["最低生活保障（低保）"]
