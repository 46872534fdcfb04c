"""The API's routes, one router per resource; each translates HTTP into calls of the domain and the
stores and back, and nothing more."""

from serving.routers import (
    access,
    audit,
    feedback,
    health,
    households,
    lists,
    metrics,
    models,
    monitoring,
    needs,
    plans,
    policy,
    scores,
)

ROUTERS = (health.router, scores.router, audit.router, policy.router, lists.router, models.router, feedback.router,
           households.router, needs.router, plans.router, access.router, monitoring.router, metrics.router)

__all__ = ["ROUTERS"]
