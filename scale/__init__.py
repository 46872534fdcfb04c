"""Scale-out: the same training and scoring on a Dask cluster (``scale.dask``).

Kept out of the single-machine path on purpose: nothing in ``features``, ``models`` or ``training``
imports it, so the API and the nightly batch never pay for importing ``distributed``.
"""
