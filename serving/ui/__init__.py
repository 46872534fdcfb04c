"""The auditor's web pages (``/ui``): server-rendered HTML behind the auditor role."""

from serving.ui.routes import router

__all__ = ["router"]
