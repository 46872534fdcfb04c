"""The auditor's pages under ``/ui``: thin routes over the audit store, the served models and MLflow.

Every page route is a plain ``def``: FastAPI runs it in a worker thread, so reading the store,
MLflow and rendering never block the event loop. Errors of these pages (no session, wrong role,
no such record) are pages too, through :class:`UIRoute`, not the API's JSON.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import SQLAlchemyError

from domain.drift import NoReference, api_drift, nightly_drift
from domain.funnel import STEP_LABELS, STEPS, funnel
from domain.funnel import totals as funnel_totals
from domain.loader import LoadedModel
from domain.plans import plan_view
from serving.audit_view import audit_summary, summaries_csv
from serving.schemas import is_request_id
from serving.ui import card, evidence, labels
from serving.ui.case import case_context, feature_label, history_rows
from serving.ui.charts import bar_chart, calibration_chart, share_chart
from serving.ui.pages import HEADERS, STATIC, render
from serving.ui.search import PAGE_SIZES, parse_form
from serving.ui.session import (
    COOKIE,
    NeedLogin,
    Refused,
    clear_session,
    key_grant,
    login_url,
    require_auditor,
    revoke,
    safe_next,
    set_session,
)
from store.access import Caller

log = logging.getLogger("relief_risk.serving.ui")

HISTORY_LIMIT = 100
IMPORTANCE_CHART_TOP = 20
DRIFT_CHARTS = 8     # the features drawn on the drift page (largest PSI first); the table lists all
_DAYS = re.compile(r"^[0-9]{1,4}$")  # ASCII digits only: int() would take "٣" or "1_0"


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=status, headers=HEADERS)


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    signed_in = status not in (401,) and "relief_risk_ui" in request.cookies
    return page("error.html", status, title=f"{status}", message=message, signed_in=signed_in,
                served=_served_names(request))


class UIRoute(APIRoute):
    """Turns the pages' own exceptions into a redirect to the login page or an HTML error page, and
    a store that fails into a 503 page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NeedLogin as exc:
                return RedirectResponse(login_url(exc.next_path), status_code=303,
                                        headers={"Cache-Control": "no-store"})
            except (Refused, PageError) as exc:
                resp = await run_in_threadpool(_error_page, request, exc.status, exc.message)
                if exc.status == 401:
                    resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
            except SQLAlchemyError as exc:  # the store down: a page that says so (503), never a 500
                log.error("store unavailable for a page: %s", type(exc).__name__)
                request.app.state.metrics.store_failed("store")
                gate = request.app.state.store_gate
                if gate.due():  # a store that was never ready: try to make it so for the next page
                    await run_in_threadpool(gate.create)
                return await run_in_threadpool(_error_page, request, 503,
                                               "审计存储暂时无法访问，请稍后再试 the audit store is unavailable")

        return route


router = APIRouter(prefix="/ui", route_class=UIRoute, include_in_schema=False)
Auditor = Annotated[Caller, Depends(require_auditor)]
ACCESS_SHOWN = 50  # access events shown on a case page


def _served(request: Request) -> list[LoadedModel]:
    scorer = request.app.state.scorer
    return [] if scorer is None else list(scorer.models)


def _served_names(request: Request) -> list[str]:
    return [m.name for m in _served(request)]


def _common(request: Request) -> dict[str, Any]:
    return {"signed_in": True, "served": _served_names(request)}


# ---- static and sign-in --------------------------------------------------------------------------
@router.get("/static/ui.css")
def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "ui.css", media_type="text/css", headers={"Cache-Control": "max-age=300"})


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/audit", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "/ui/audit") -> HTMLResponse:
    return page("login.html", next=safe_next(next), error=None, signed_in=False, served=[])


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body of at most 4 KiB (a key and a path); anything else reads as empty."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > 4096:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8)
    except ValueError:
        return {}
    return {k: v[0] for k, v in parsed.items()}


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/login")
def login(request: Request, form: Annotated[dict[str, str], Depends(_form)]) -> Response:
    key, next_path = form.get("key", "").strip(), safe_next(form.get("next"))
    failures = request.app.state.login_window
    wait = failures.retry_after(_client(request))
    if wait is not None:  # too many failures from this address: not even a right key is tried
        log.warning("ui login throttled: too many failures from one address")
        resp = page("login.html", 429, next=next_path, signed_in=False, served=[],
                    error=f"登录失败次数过多，请 {wait} 秒后再试 too many failed sign-ins; retry in {wait} s")
        resp.headers["Retry-After"] = str(wait)
        return resp
    grant = key_grant(request, key) if key else None
    if grant is None:
        failures.add(_client(request))
        log.info("ui login refused: unknown key")  # never the key itself
        return page("login.html", 401, next=next_path, error="密钥无效 unknown key", signed_in=False, served=[])
    if "auditor" not in grant.roles:
        log.info("ui login refused: key without the auditor role")
        return page("login.html", 403, next=next_path, signed_in=False, served=[],
                    error="此密钥没有审计员（auditor）角色，不能查看审计页面 this key does not hold the auditor role")
    resp = RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
    set_session(resp, request, key)
    return resp


@router.post("/logout")
def logout(request: Request) -> Response:
    token = request.cookies.get(COOKIE)
    if token:
        revoke(request.app.state.audit.engine, token)  # a copy of the cookie is dead too
    resp = RedirectResponse("/ui/login", status_code=303, headers={"Cache-Control": "no-store"})
    clear_session(resp, request)
    return resp


# ---- a case --------------------------------------------------------------------------------------
@router.get("/cases/{request_id}")
def case_page(request: Request, request_id: str, caller: Auditor) -> HTMLResponse:
    store, access = request.app.state.audit, request.app.state.access
    rec = store.get(request_id) if is_request_id(request_id) else None
    if rec is None or not caller.may_see(rec.town):
        raise PageError(404, "没有这个请求编号的审计记录 no audit record with this request_id")
    history = store.query(household_id=rec.household_id, limit=HISTORY_LIMIT, towns=caller.towns)
    head_seq, _ = store.head()
    access.record("case_page", caller, households=[rec.household_id], requests=[r.request_id for r in history],
                  count=len(history))
    events = access.query(target=rec.household_id, limit=ACCESS_SHOWN)
    state = request.app.state  # 需求评估: the household's needs from its latest score and the visits since
    needs = state.needs.for_household(store, state.feedback, state.advisor, rec.household_id)
    return page("case.html", **_common(request), **case_context(rec, history, head_seq, events),
                plan=_plan(request, rec.household_id), needs=needs)


def _plan(request: Request, household_id: str) -> list[dict[str, Any]]:
    """The household's plan (一户一策) as the case page shows it: measures, owners, due dates, statuses
    and each measure's history, in Chinese."""
    measures = request.app.state.plans.plan(household_id)
    return plan_view(household_id, measures, request.app.state.advisor.measures, dt.date.today())["measures"]


# ---- the audit search ----------------------------------------------------------------------------
@router.get("/audit")
def audit_page(request: Request, caller: Auditor) -> HTMLResponse:
    form = parse_form(dict(request.query_params))
    records = [] if form.errors else request.app.state.audit.query(
        **form.query_kwargs(), before_seq=form.before_seq, limit=form.limit, towns=caller.towns)
    if not form.errors:
        request.app.state.access.record("audit_search", caller, households=[r.household_id for r in records],
                                        requests=[r.request_id for r in records])
    next_seq = records[-1].seq if len(records) == form.limit else None
    return page("audit.html", 400 if form.errors else 200, **_common(request), form=form,
                rows=history_rows(records, current=""), page_sizes=PAGE_SIZES,
                next_url=form.page_url(next_seq) if next_seq else None,
                first_url=form.page_url() if form.before_seq else None, csv_url=form.csv_url())


@router.get("/audit.csv")
def audit_csv(request: Request, caller: Auditor) -> Response:
    """The same CSV as ``GET /v1/audit?format=csv`` with the same search, for a signed-in browser."""
    form = parse_form(dict(request.query_params), max_limit=1000)
    if form.errors:
        raise PageError(400, "；".join(form.errors))
    records = request.app.state.audit.query(**form.query_kwargs(), before_seq=form.before_seq, limit=form.limit,
                                            towns=caller.towns)
    request.app.state.access.record("audit_export", caller, households=[r.household_id for r in records],
                                    requests=[r.request_id for r in records])
    return Response(summaries_csv([audit_summary(r) for r in records]), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"', "Cache-Control": "no-store",
                             "X-Content-Type-Options": "nosniff"})


# ---- models --------------------------------------------------------------------------------------
def _served_model(request: Request, name: str) -> LoadedModel:
    if request.app.state.scorer is None:
        raise PageError(503, f"模型尚未加载 models not loaded: {request.app.state.load_error or 'starting'}")
    for m in _served(request):
        if m.name == name:
            return m
    raise PageError(404, "没有在服务的这个模型 no served model of this name")


@router.get("/models")
def models_page(request: Request, caller: Auditor) -> Response:
    names = _served_names(request)
    if len(names) == 1:
        return RedirectResponse(f"/ui/models/{names[0]}", status_code=303)
    return page("models.html", **_common(request), models=_served(request))


@router.get("/models/{name}")
def model_page(request: Request, name: str, caller: Auditor, version: str | None = None) -> HTMLResponse:
    lm = _served_model(request, name)
    client = MlflowClient()
    problems: list[str] = []
    try:
        versions = evidence.registered_versions(client, name)
    except Exception as exc:  # the registry unreachable: still show what is served
        log.warning("MLflow registry unreadable: %s", type(exc).__name__)
        versions, problems = [], [f"MLflow 模型登记无法读取（{type(exc).__name__}）"]
    shown = version or lm.version
    row = next((v for v in versions if v.version == shown), None)
    if version is not None and row is None:
        raise PageError(404, "这个模型没有该登记版本 no such registered version")
    run_id = row.run_id if row and row.run_id else (lm.run_id if shown == lm.version else None)
    ev = evidence.run_evidence(client, run_id) if run_id else None
    importance = sorted(((feature_label(f), v) for f, v in (ev.importance or {}).items()), key=lambda t: -t[1]) \
        if ev else []
    return page(
        "model.html", **_common(request), name=name, risk_label=labels.RISKS.get(name, ""), lm=lm, versions=versions,
        shown=shown, run_id=run_id, ev=ev, problems=problems + (ev.problems if ev else []),
        importance=importance, feedback=_feedback_rates(request, name), funnel=_funnel(request, name, caller),
        importance_chart=(bar_chart(importance[:IMPORTANCE_CHART_TOP], "平均 |SHAP|（对数几率）")
                          if importance else None),
        calibration_chart=calibration_chart(ev.calibration) if ev and ev.calibration else None,
        card=card.parse(ev.model_card_md) if ev and ev.model_card_md else None,
        capacity=_capacity(ev.params.get("capacity") if ev else None, lm.model.thresholds.capacity))


@router.get("/models/{name}/drift")
def drift_page(request: Request, name: str, caller: Auditor, days: str = "30", source: str = "api") -> HTMLResponse:
    lm = _served_model(request, name)
    if caller.towns is not None:
        raise PageError(403, "数据漂移汇总全部镇（街道）的评分，限定镇（街道）的密钥不能查看 "
                             "a key limited to towns cannot see drift")
    if not _DAYS.fullmatch(days) or not 1 <= int(days) <= 3650:
        raise PageError(422, "最近天数须为 1 到 3650 的整数 days must be a whole number from 1 to 3650")
    if source not in ("api", "nightly_batch"):
        raise PageError(422, "来源须为 api 或 nightly_batch source must be api or nightly_batch")
    state = request.app.state
    try:
        if source == "nightly_batch":
            report = nightly_drift(state.audit, lm)
            if report is None:
                raise PageError(404, "尚无记录了漂移报告的夜间批量 no nightly batch with a drift report")
        else:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(days=int(days))
            report = api_drift(state.audit, lm, since, None, state.drift_thresholds)
    except NoReference as exc:
        raise PageError(409, f"该模型版本没有训练参考分布，重新训练后才能监测 {exc}") from exc
    except SQLAlchemyError as exc:
        log.warning("audit trail unreadable: %s", type(exc).__name__)
        raise PageError(503, "审计库暂时无法读取 the audit store is unreachable") from exc
    shown = [report["score"], *report["features"][:DRIFT_CHARTS]]
    charts = [(d, share_chart(d["bins"], d["reference"], d["current"])) for d in shown]
    return page("drift.html", **_common(request), name=name, risk_label=labels.RISKS.get(name, ""), report=report,
                charts=charts, days=days)


def _feedback_rates(request: Request, name: str) -> dict | None:
    try:
        return request.app.state.feedback.confirmation().get(name)
    except Exception as exc:  # the store unreachable: the page still shows the model
        log.warning("feedback unreadable: %s", type(exc).__name__)
        return None


def _funnel(request: Request, name: str, caller: Caller) -> dict | None:
    """The model's risk through the funnel from flag to delivered help, per town, and a chart of its totals."""
    try:
        rows = [r for r in funnel(request.app.state.funnel.facts(), caller.towns) if r["risk"] == name]
    except Exception as exc:  # the store unreachable: the page still shows the model
        log.warning("funnel unreadable: %s", type(exc).__name__)
        return None
    total = funnel_totals(rows, name)
    return {"rows": rows, "steps": STEPS, "labels": STEP_LABELS,
            "chart": bar_chart([(STEP_LABELS[s], float(total[s])) for s in STEPS], "户数", digits=0)}


def _capacity(logged: str | None, served: float) -> float:
    """The run's capacity parameter (a share of households), or the served model's."""
    try:
        return float(logged) if logged is not None else served
    except ValueError:
        return served


@router.get("/models/{name}/versions/{version}/model_card.html")
def model_card_html(request: Request, name: str, version: str, caller: Auditor) -> Response:
    """The run's HTML model card, sandboxed: it runs no script and reaches nothing outside itself."""
    _served_model(request, name)
    client = MlflowClient()
    row = next((v for v in evidence.registered_versions(client, name) if v.version == version), None)
    html = evidence.model_card_html(client, row.run_id) if row and row.run_id else None
    if html is None:
        raise PageError(404, "本版本未记录 HTML 模型卡 not logged for this version")
    return HTMLResponse(html, headers={
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                   "frame-ancestors 'self'"})
