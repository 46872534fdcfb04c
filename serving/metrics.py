"""The service's operations metrics, in Prometheus's text format (``GET /metrics``, admin key).

What is counted (prefix ``relief_risk_``):

- ``http_requests_total`` and ``http_request_duration_seconds`` (histogram) per ``method``,
  ``route`` and ``status``: the route's template (``/v1/audit/{request_id}``), never the path that
  was asked, so no household or request id reaches a label; a path no route serves is
  ``(unmatched)``, a method outside HTTP's usual ones ``OTHER``;
- ``scores_total`` per ``risk``, ``band`` and ``flagged``: scores answered (one household or a
  batch), counted once their audit record is committed;
- ``audit_commit_duration_seconds`` and ``audit_commit_entries`` (histograms): per transaction of
  the audit trail's group commit, how long it took and how many entries it carried;
  ``audit_commit_failures_total``: transactions that did not commit;
- ``store_failures_total`` per ``kind`` (``audit``, ``access``, ``store``, ``store_unexpected``):
  the requests answered 503 because the store failed them;
- ``model_info`` (1 per loaded model: ``risk``, ``name``, ``version``), ``model_missing`` (1 per
  configured risk without a loaded model, 0 otherwise) and ``ready`` (1 when the models are loaded
  and the store answers, as last found at start-up, by ``/readyz`` or by ``/metrics``).

Several worker processes (``relief-risk serve --workers N``): the supervisor points
``PROMETHEUS_MULTIPROC_DIR`` at a private folder before the workers start, each worker's values go
to files there, and ``/metrics`` from any worker reads them all, so it reports the whole service
(counters and histograms summed over the workers, those of workers that died included;
``model_info`` and ``model_missing`` the largest value among the live workers, ``ready`` the
smallest: ready when every live worker is). One process on its own (tests, ``--workers 1``) keeps
its values in memory, in a registry of the app's own.

The request path pays one counter increment and one histogram observation, on label children
looked up once per (method, route, status) and kept; no lock is held across an await.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "(unmatched)"
STORE_FAILURES = ("audit", "access", "store", "store_unexpected")

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ENTRY_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def tally(scores: Iterable[Mapping[str, Any]]) -> Tally[tuple[str, str, bool]]:
    """Answered scores (each a response's ``{"risk", "band", "flagged", ...}``) counted by risk, band
    and flag: what :meth:`Metrics.scored` takes (a batch's counted in its worker thread)."""
    return Tally((s["risk"], s["band"], s["flagged"]) for s in scores)


def multiprocess_dir() -> str | None:
    """The folder the worker processes share their values in, when there is one."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """The metrics of one app. ``multiprocess``: keep the values in ``PROMETHEUS_MULTIPROC_DIR``'s
    files and expose what every process wrote there (by default, whether the variable is set; it
    must be set before ``prometheus_client`` is first imported, as the supervisor does)."""

    def __init__(self, multiprocess: bool | None = None) -> None:
        self.multiprocess = multiprocess_dir() is not None if multiprocess is None else multiprocess
        # one registry per app: several apps in one process (the tests) count apart
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("relief_risk_http_requests", "HTTP requests answered, by method, route template "
                                "and status", ["method", "route", "status"], registry=r)
        self.latency = Histogram("relief_risk_http_request_duration_seconds", "Time to answer an HTTP request, "
                                 "by method, route template and status", ["method", "route", "status"],
                                 buckets=REQUEST_BUCKETS, registry=r)
        self.scores = Counter("relief_risk_scores", "Scores answered (single and batch), by risk, band and flag",
                              ["risk", "band", "flagged"], registry=r)
        self.commit_seconds = Histogram("relief_risk_audit_commit_duration_seconds", "Time of one audit-trail "
                                        "transaction of the group commit", buckets=COMMIT_BUCKETS, registry=r)
        self.commit_entries = Histogram("relief_risk_audit_commit_entries", "Audit entries one committed "
                                        "transaction carried", buckets=ENTRY_BUCKETS, registry=r)
        self.commit_failures = Counter("relief_risk_audit_commit_failures", "Audit-trail transactions that did "
                                       "not commit", registry=r)
        self.store_failures = Counter("relief_risk_store_failures", "Requests answered 503 because the store "
                                      "failed: audit (a score's record not committed), access (a read's access "
                                      "event not written), store (a read or write unavailable), store_unexpected "
                                      "(a store error no route expected)", ["kind"], registry=r)
        self.model_info = Gauge("relief_risk_model_info", "1 for each loaded model, with its risk, registered name "
                                "and version", ["risk", "name", "version"], multiprocess_mode="livemax", registry=r)
        self.model_missing = Gauge("relief_risk_model_missing", "1 for each configured risk with no loaded model",
                                   ["risk"], multiprocess_mode="livemax", registry=r)
        self.ready = Gauge("relief_risk_ready", "1 when the models are loaded and the store answers (every live "
                           "worker)", multiprocess_mode="livemin", registry=r)
        for kind in STORE_FAILURES:  # present at 0 from the start: a rate needs its first point
            self.store_failures.labels(kind)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    # ---- the request path
    def request(self, method: str, route: str | None, status: int, seconds: float) -> None:
        """One answered request: ``route`` is the matched route's template (None: no route)."""
        key = (method, route or UNMATCHED, status)
        children = self._children.get(key)
        if children is None:
            labels = (method if method in METHODS else "OTHER", key[1], str(status))
            children = self._children[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)

    def scored(self, counts: Mapping[tuple[str, str, bool], int]) -> None:
        """Scores answered, as :func:`tally` counts them."""
        for (risk, band, flagged), n in counts.items():
            self.scores.labels(risk, band, "true" if flagged else "false").inc(n)

    def store_failed(self, kind: str) -> None:
        self.store_failures.labels(kind).inc()

    def committed(self, seconds: float, entries: int, ok: bool) -> None:
        """One transaction of :class:`store.writer.GroupCommitter` (called from its thread)."""
        if ok:
            self.commit_seconds.observe(seconds)
            self.commit_entries.observe(entries)
        else:
            self.commit_failures.inc()

    # ---- what the service is serving
    def models(self, loaded: Iterable[tuple[str, str, str]], configured: Iterable[str]) -> None:
        """``loaded``: (risk, name, version) of each model served; ``configured``: the risks the service
        was asked to serve (those without a loaded model are missing)."""
        loaded = list(loaded)
        for risk, name, version in loaded:
            self.model_info.labels(risk, name, version).set(1)
        served = {risk for risk, _, _ in loaded}
        for risk in configured:
            self.model_missing.labels(risk).set(0 if risk in served else 1)

    def set_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    # ---- the exposition
    def exposition(self) -> bytes:
        """The text ``/metrics`` answers: this process's values, or every worker's in multiprocess mode."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
