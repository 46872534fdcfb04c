"""A deterministic, vectorised synthetic city for the relief-risk service.

``generate_city(n_households, end_month=..., n_months=..., seed=...)`` returns a :class:`City` with
the six contract tables (households, persons, income, claims, assistance, verifications) and the
latent hardship episodes (``truth``) used for honest evaluation. The generative story, grounded in
the policy facts of ``docs/policy.md``, is in ``synthcity/README.md``. No real personal data is involved.
"""

from synthcity._generate import City, generate_city

__all__ = ["City", "generate_city"]
