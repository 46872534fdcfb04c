"""What the contract (docs/contract.md) says the raw tables are: their closed lists of codes
and their columns, in the contract's order. Data only; :mod:`features.tables` re-exports it.
"""

from __future__ import annotations

from collections.abc import Iterable

TOWNS_DEFAULT = (
    "yangshe", "tangqiao", "jingang", "jinfeng", "leyu", "fenghuang", "nanfeng", "daxin", "changyinsha",
)
HUKOU_TYPES = ("urban", "rural")
HOUSING = ("owned", "rented", "public_rental", "none")
RELATIONS = ("head", "spouse", "child", "parent", "grandchild", "sibling", "other")
SEXES = ("M", "F")
EMPLOYMENT = (
    "employed", "self_employed", "farmer", "unemployed", "retired", "student", "unable_to_work", "other",
)
INCOME_SOURCES = ("wage", "pension", "unemployment_benefit", "business", "agriculture", "transfer", "other")
SETTINGS = ("outpatient", "inpatient", "special_outpatient", "pharmacy")
DIAGNOSIS_GROUPS = (
    "cancer", "renal", "cardio_cerebrovascular", "diabetes_metabolic", "mental", "respiratory", "injury",
    "maternity", "rare_disease", "other",
)
PROGRAMS = ("dibao", "dibao_edge", "tekun", "expenditure_hardship", "temporary")
FINDINGS = (
    "illness_poverty", "disability_poverty", "unemployment_poverty", "elderly_care_need",
    "child_in_difficulty", "not_in_need",
)

# Column names exactly as the contract gives them, in its order. Kinds: str, cat (closed list),
# int, money, date, month, date_or_null.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "households": {
        "household_id": "str", "town": "cat", "hukou_type": "cat", "housing": "cat",
        "property_count": "int", "vehicle_count": "int", "financial_assets": "money",
    },
    "persons": {
        "person_id": "str", "household_id": "str", "relation": "cat", "sex": "cat", "birth_date": "date",
        "employment": "cat", "disability_grade": "int",
    },
    "income": {"person_id": "str", "month": "month", "source": "cat", "amount": "money"},
    "claims": {
        "claim_id": "str", "person_id": "str", "service_date": "date", "setting": "cat",
        "diagnosis_group": "cat", "total_cost": "money", "fund_paid": "money",
        "critical_illness_paid": "money", "assistance_paid": "money", "out_of_pocket": "money",
        "inpatient_days": "int",
    },
    "assistance": {
        "household_id": "str", "program": "cat", "start_date": "date", "end_date": "date_or_null",
        "monthly_amount": "money",
    },
    "verifications": {"household_id": "str", "visited_on": "date", "finding": "cat"},
}

# Columns a table may carry beyond the contract's: the project's extensions, not the platform's
# (docs/contract.md). A table without one reads as it always did; the feature code asks for them
# with :func:`features.tables.Tables.has`. ``households.city``: the household's city (省内通办);
# absent or empty, the city of its town.
OPTIONAL_COLUMNS: dict[str, dict[str, str]] = {"households": {"city": "str"}}


def columns_of(name: str, present: Iterable[str] = ()) -> dict[str, str]:
    """The contract's columns of table ``name``, then those of its optional columns that are in
    ``present``: the columns a table read with those columns keeps, in order."""
    present = set(present)
    return {**TABLE_COLUMNS[name], **{c: k for c, k in OPTIONAL_COLUMNS.get(name, {}).items() if c in present}}


CATEGORIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("households", "hukou_type"): HUKOU_TYPES,
    ("households", "housing"): HOUSING,
    ("persons", "relation"): RELATIONS,
    ("persons", "sex"): SEXES,
    ("persons", "employment"): EMPLOYMENT,
    ("income", "source"): INCOME_SOURCES,
    ("claims", "setting"): SETTINGS,
    ("claims", "diagnosis_group"): DIAGNOSIS_GROUPS,
    ("assistance", "program"): PROGRAMS,
    ("verifications", "finding"): FINDINGS,
}
