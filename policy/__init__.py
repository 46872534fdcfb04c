"""The policy calculator (政策计算器): which programmes a household likely qualifies for, with the
arithmetic shown. It reads the dated parameters of ``features/policy_parameters.toml`` and the
household's facts from the same feature path as the models."""

from policy.calculator import PROGRAM_LABELS, ProgramCheck, check_programs
from policy.lists import DefinitionError, ListBook, ListDefinition, household_lists, list_matrix, load_lists
from policy.parameters import EligibilityBook, EligibilityVersion, load_eligibility
from policy.warm import Measure, MeasureBook, load_measures, warm_list

__all__ = ["PROGRAM_LABELS", "EligibilityBook", "EligibilityVersion", "ProgramCheck", "check_programs",
           "load_eligibility",
           "DefinitionError", "ListBook", "ListDefinition", "household_lists", "list_matrix", "load_lists",
           "Measure", "MeasureBook", "load_measures", "warm_list"]
