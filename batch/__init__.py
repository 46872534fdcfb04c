"""The nightly batch (:mod:`batch.run`: scores, explanations, lists, the batch history) and the
worklist caseworkers take out next morning (:mod:`batch.worklist`, :mod:`batch.excel`)."""

from batch.excel import NOTE, SUMMARY_SHEET, write_workbook
from batch.run import (
    CONTRIB_PREFIX,
    EXPLAIN_MODES,
    EXPLANATIONS_FILE,
    SCORES_FILE,
    SUMMARY_FILE,
    BatchSummary,
    explain_households,
    peak_rss_mb,
    read_households,
    record_batch,
    run_batch,
)
from batch.worklist import WORKLIST_COLUMNS, WorklistFiles, town_capacity, write_worklist

__all__ = [
    "CONTRIB_PREFIX", "EXPLAIN_MODES", "EXPLANATIONS_FILE", "NOTE", "SCORES_FILE", "SUMMARY_FILE", "SUMMARY_SHEET",
    "WORKLIST_COLUMNS", "BatchSummary", "WorklistFiles", "explain_households", "peak_rss_mb", "read_households",
    "record_batch", "run_batch", "town_capacity", "write_workbook", "write_worklist",
]
