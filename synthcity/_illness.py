"""Illness-induced poverty (因病致贫) as a latent monthly process.

A household is strained when its rolling 12-month medical out-of-pocket spending exceeds 40% of its
capacity to pay (the WHO catastrophic-spending idea of Xu et al., Lancet 2003, in domain.md) plus
a liquid buffer:

    capacity = max(income_12m + unobserved_12m + assistance cash_12m − 低保 line × size × 12, 0)
    strain   = oop_12m − 0.4 × capacity − buffer

``buffer`` is unobserved: part of the deposits the bank check finds (with noise), family support,
minus debts. The episode starts one or two months after strain turns positive (with at least
5,000 yuan spent) and ends once strain has been non-positive for three months and the episode has
lasted six. The same illness therefore impoverishes a poor household and not a wealthy one, and no
single column decides it.
"""

from __future__ import annotations

import numpy as np

from synthcity._households import Population

CAPACITY_SHARE = 0.4
MIN_OOP_12M = 5_000.0  # yuan
MIN_MONTHS = 6
CALM_MONTHS = 3


class IllnessPoverty:
    """State of the process for every household; :meth:`step` advances one month."""

    def __init__(self, rng: np.random.Generator, pop: Population) -> None:
        n = pop.n_households
        self._rng = rng
        self._size = pop.size
        savings = 0.4 * pop.financial_assets * np.exp(rng.normal(0.0, 0.5, n))
        support = np.where(rng.random(n) < 0.6, 5_000.0 * np.exp(rng.normal(0.0, 0.8, n)), 0.0)
        debts = np.where(rng.random(n) < 0.12, 40_000.0 * np.exp(rng.normal(0.0, 0.7, n)), 0.0)
        self.buffer = savings + support - debts
        self.active = np.zeros(n, dtype=bool)
        self.pending = np.full(n, -1, dtype=np.int64)  # month the episode will start, -1 none
        self.start = np.full(n, -1, dtype=np.int64)
        self.calm = np.zeros(n, dtype=np.int64)
        self.strain = np.zeros(n)
        self._rows: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []
        self._ends: list[np.ndarray] = []

    def step(self, m: int, oop_12m: np.ndarray, income_12m: np.ndarray, line: float) -> np.ndarray:
        """Advances to month ``m`` given rolling 12-month yuan totals; returns who is in hardship."""
        capacity = np.maximum(income_12m - line * self._size * 12, 0.0)
        self.strain = oop_12m - CAPACITY_SHARE * capacity - self.buffer
        strained = (self.strain > 0) & (oop_12m >= MIN_OOP_12M)
        new = strained & ~self.active & (self.pending < 0)
        self.pending[new] = m + self._rng.integers(1, 3, int(new.sum()))
        begin = (self.pending == m) & ~self.active
        self.active[begin] = True
        self.start[begin] = m
        self.pending[begin] = -1
        self.calm = np.where(self.active & ~strained, self.calm + 1, 0)
        finish = self.active & (self.calm >= CALM_MONTHS) & (m - self.start + 1 >= MIN_MONTHS)
        self._close(finish, m)
        return self.active.copy()

    def _close(self, which: np.ndarray, end_month: int) -> None:
        idx = np.nonzero(which)[0]
        self._rows.append(idx)
        self._starts.append(self.start[idx])
        self._ends.append(np.full(len(idx), end_month, dtype=np.int64))
        self.active[idx] = False
        self.start[idx] = -1
        self.calm[idx] = 0

    def episodes(self, last_month: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All episodes (household, start month, end month inclusive); open ones end at ``last_month``."""
        self._close(self.active.copy(), last_month)
        return np.concatenate(self._rows), np.concatenate(self._starts), np.concatenate(self._ends)
