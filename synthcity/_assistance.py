"""Assistance history: who is on 低保, 低保边缘, 特困 or 支出型 at the start, who enters after a
visit finds them in need, who leaves after a review, and one-off temporary assistance (临时救助).

Eligibility follows domain.md with the synthetic world's lines: 低保 below the line per person,
低保边缘 below 1.5 × the line, 特困 for households where nobody can work (≥60, <16 or severely
disabled) below the line, 支出型 for medical hardship above those lines (recognised for 12
months). Assets must be within limits (deposits ≤ 24 months of the line per person, no more than
one property, no car). Take-up is incomplete, which is why active discovery matters.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from features.tables import PROGRAMS
from synthcity._common import Calendar, round_yuan, string_column
from synthcity._households import Population

PRG = {name: code for code, name in enumerate(PROGRAMS)}
NONE = -1
# medical assistance (医疗救助) share of the covered personal part, by program code (-1 = none)
MA_SHARE = np.array([0.0, 0.7, 0.6, 1.0, 0.0, 0.0])  # index = program code + 1
TEKUN_MULTIPLE = 1.3  # 特困 basic living support ≥ 1.3 × 低保标准
RECOGNITION_MONTHS = 12


class AssistanceBook:
    """Open programme per household plus the closed rows; amounts in yuan per month."""

    def __init__(self, rng: np.random.Generator, pop: Population, cal: Calendar) -> None:
        n = pop.n_households
        self._rng, self._pop, self._cal = rng, pop, cal
        self.program = np.full(n, NONE, dtype=np.int64)
        self.start_month = np.full(n, -1, dtype=np.int64)
        self.start_day = np.full(n, cal.span_start, dtype="datetime64[D]")
        self.amount = np.zeros(n)
        self._closed: list[tuple[np.ndarray, ...]] = []
        unable = (pop.age >= 60) | (pop.age < 16) | np.isin(pop.disability, (1, 2))
        self.nobody_can_work = np.bincount(pop.hh, weights=unable, minlength=n) == pop.size
        self.assets_ok = ((pop.property_count <= 1) & (pop.vehicle_count == 0))

    def _assets_ok(self, line: float) -> np.ndarray:
        return self.assets_ok & (self._pop.financial_assets <= 24 * line * self._pop.size)

    def start_of_span(self, per_capita: np.ndarray, line: float) -> None:
        """Programmes already running on the first day (take-up 75% 特困, 55% 低保, 30% 边缘)."""
        u = self._rng.random(len(per_capita))
        ok = self._assets_ok(line)
        tekun = self.nobody_can_work & (per_capita < line) & ok & (u < 0.75)
        dibao = ~tekun & (per_capita < line) & ok & (u < 0.55)
        edge = ~tekun & ~dibao & (per_capita < 1.5 * line) & ok & (u < 0.30)
        for mask, prg in ((tekun, "tekun"), (dibao, "dibao"), (edge, "dibao_edge")):
            self._open(np.nonzero(mask)[0], PRG[prg], 0, per_capita, line)

    def _open(self, idx: np.ndarray, prg: int, month: int, per_capita: np.ndarray, line: float) -> None:
        """Closes whatever runs for ``idx`` the day before and opens ``prg`` from ``month``'s first day."""
        day = self._cal.month_start[month]
        self._close(idx[self.program[idx] != NONE], day - np.timedelta64(1, "D"))
        size = self._pop.size[idx]
        if prg == PRG["tekun"]:
            amount = TEKUN_MULTIPLE * line * size
        elif prg == PRG["dibao"]:
            amount = np.maximum(line - per_capita[idx], 0.0) * size
        else:
            amount = np.zeros(len(idx))
        self.program[idx], self.start_month[idx], self.start_day[idx] = prg, month, day
        self.amount[idx] = round_yuan(amount)

    def _close(self, idx: np.ndarray, end_day: np.datetime64 | np.ndarray) -> None:
        if len(idx):
            end = np.broadcast_to(np.asarray(end_day, dtype="datetime64[D]"), idx.shape).copy()
            self._closed.append((idx, self.program[idx].copy(), self.start_day[idx].copy(), end,
                                 self.amount[idx].copy()))
        self.program[idx] = NONE

    def expire(self, month: int) -> None:
        """支出型 recognition ends after 12 months (the last day of the 12th month)."""
        due = month - self.start_month >= RECOGNITION_MONTHS
        done = np.nonzero((self.program == PRG["expenditure_hardship"]) & due)[0]
        self._close(done, self._cal.month_start[month] - np.timedelta64(1, "D"))

    def cash(self) -> np.ndarray:
        """Monthly cash per household from the open programme (yuan)."""
        return np.where(np.isin(self.program, (PRG["dibao"], PRG["tekun"])), self.amount, 0.0)

    def after_visit(self, idx: np.ndarray, in_need: np.ndarray, illness: np.ndarray, review: np.ndarray,
                    month: int, visit_day: np.ndarray, per_capita: np.ndarray, oop_12m: np.ndarray,
                    line: float) -> None:
        """Enrolment, switches and exits decided at visits in ``month`` (start next month)."""
        rng, n = self._rng, len(idx)
        prg, pc, ok = self.program[idx], per_capita[idx], self._assets_ok(line)[idx]
        u = rng.random(n)
        nxt = month + 1
        if nxt < self._cal.n_months:
            settled = np.isin(prg, (PRG["dibao"], PRG["tekun"]))
            tekun = in_need & ~settled & self.nobody_can_work[idx] & (pc < line) & ok & (u < 0.8)
            dibao = in_need & ~settled & ~tekun & (pc < line) & ok & (u < 0.85)
            edge = (in_need & ~settled & ~tekun & ~dibao & (prg != PRG["dibao_edge"]) & (pc < 1.5 * line) & ok
                    & (u < 0.7))
            spend = (illness & (prg == NONE) & ~tekun & ~dibao & ~edge & (u < 0.75))
            for mask, name in ((tekun, "tekun"), (dibao, "dibao"), (edge, "dibao_edge"),
                               (spend, "expenditure_hardship")):
                self._open(idx[mask], PRG[name], nxt, per_capita, line)
            recovered = review & ~in_need & (((prg == PRG["dibao"]) & (pc > 1.2 * line))
                                             | ((prg == PRG["dibao_edge"]) & (pc > 1.7 * line)))
            month_end = self._cal.month_start[nxt] - np.timedelta64(1, "D")
            self._close(idx[recovered & (self.program[idx] == prg)], month_end)
        # temporary assistance: a one-off payment a few days to a month after the visit
        temp = in_need & (rng.random(n) < np.where(illness, 0.6, 0.3))
        day = visit_day + rng.integers(3, 31, n).astype("timedelta64[D]")
        temp &= day <= self._cal.span_end
        amount = np.where(illness, np.clip(0.3 * oop_12m[idx], 1_000, 30_000), rng.uniform(1_000, 5_000, n))
        t = np.nonzero(temp)[0]
        self._closed.append((idx[t], np.full(len(t), PRG["temporary"]), day[t], day[t],
                             round_yuan(amount[t])))

    def frame(self, household_ids: pa.Array) -> pd.DataFrame:
        """The contract's assistance table; open programmes have no end date (NaT)."""
        still = np.nonzero(self.program != NONE)[0]
        no_end = np.full(len(still), np.datetime64("NaT"), dtype="datetime64[D]")
        parts = [*self._closed,
                 (still, self.program[still], self.start_day[still], no_end, self.amount[still])]
        hh, prg, start, end, amount = (np.concatenate([p[i] for p in parts]) for i in range(5))
        order = np.lexsort((hh, start))
        return pd.DataFrame({
            "household_id": string_column(hh[order], household_ids),
            "program": string_column(prg[order], PROGRAMS),
            "start_date": start[order].astype("datetime64[ns]"),
            "end_date": end[order].astype("datetime64[ns]"),
            "monthly_amount": amount[order].astype(np.float64),
        })
