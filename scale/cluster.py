"""The Dask cluster the scale-out runs on: a client of a scheduler, or of a ``LocalCluster`` here."""

from __future__ import annotations

import os
from typing import Any

from distributed import Client

SCHEDULER_ENV = "RELIEF_RISK_DASK_SCHEDULER"
LOCAL = "local"  # connect("local"): a LocalCluster even where the environment names a scheduler

# Dask's default turns object columns and indexes into pyarrow strings; the household ids stay what
# build_features gives (Python strings, object dtype), so the Dask results equal the pandas ones.
NO_STRING_CONVERSION = {"dataframe.convert-string": False}


def connect(address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1,
            processes: bool = True, **cluster_options: Any) -> Client:
    """A client of the scheduler at ``address`` (e.g. ``tcp://scheduler:8786``); with None, of the
    scheduler named by ``RELIEF_RISK_DASK_SCHEDULER``; with neither (or ``"local"``), of a new
    ``LocalCluster`` on this machine, which closes with the client.

    The local default, 2 single-threaded worker processes, fits a 2-core machine. Processes need the
    calling script to guard its entry point (``if __name__ == "__main__":``), as multiprocessing does.
    Workers of a real cluster must have this project installed (the same version as the client).
    """
    if address is None:
        address = os.environ.get(SCHEDULER_ENV) or None
    if address and address != LOCAL:
        return Client(address)
    # a Client given cluster arguments starts its own LocalCluster and closes it on close()
    return Client(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                  dashboard_address=cluster_options.pop("dashboard_address", None), **cluster_options)


def n_workers(client: Client) -> int:
    return len(client.nthreads())
