"""The bank node's decision API and the credit officer's page (Starlette, served by uvicorn).

- ``POST /v1/decisions``: one applicant ``{"id", "amount"?, "monthly_income"?, "features"?}`` ->
  PD, score, reason codes, decision (approve / refer / decline), limit, rate, the annualised-rate
  disclosure, and the adverse-action notice when declined;
- ``POST /v1/decisions/batch``: ``{"applicants": [...], "disclosures"?: false}`` (up to 10,000; one
  request to the partner), for portfolio re-scoring: limits and prices, the disclosure texts only on request;
- ``GET /healthz`` (the process serves), ``GET /readyz`` (the session with the partner is up),
  ``GET /openapi.json``;
- ``GET /``: the credit officer's page: a form (``GET /?id=...&amount=...``) and the recent decisions.

A malformed request gets 400 with one line saying what to fix; more than ``max_inflight`` requests
at once get 503 (shed, not queued). Each request logs one JSON line (``misuan.serving.http``): the
applicant's ID appears as a keyed hash (a per-process secret), never in the clear. The page and the
API have no login of their own: serve them on the bank's internal network, behind its access proxy.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from html import escape
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from misuan.errors import MisuanError
from misuan.serving.node import BankService

__all__ = ["MAX_BATCH", "create_app", "openapi"]

log = logging.getLogger("misuan.serving.http")
MAX_BATCH = 10_000
_APPLICANT_KEYS = {"id", "amount", "monthly_income", "features"}
_LOG_KEY = secrets.token_bytes(32)  # the log names an applicant by a keyed hash: not reversible by guessing IDs


class BadRequest(Exception):
    pass


def _applicant(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequest(f"{where}: an applicant is a JSON object with an \"id\"")
    unknown = sorted(set(doc) - _APPLICANT_KEYS)
    if unknown:
        raise BadRequest(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_APPLICANT_KEYS)}")
    if not isinstance(doc.get("id"), (str, int)) or isinstance(doc.get("id"), bool) or not 0 < len(str(doc.get("id")).strip()) <= 200:
        raise BadRequest(f"{where}.id: give the applicant's customer ID as a non-empty string of at most 200 characters")
    for key in ("amount", "monthly_income"):
        v = doc.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
            raise BadRequest(f"{where}.{key}: give a positive number, not {v!r}")
    feats = doc.get("features")
    if feats is not None and (not isinstance(feats, dict) or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in feats.values())):
        raise BadRequest(f"{where}.features: give an object of feature name -> number (null: missing)")
    return doc


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise BadRequest("the body is not JSON") from None


def create_app(service: BankService) -> Starlette:
    """The ASGI app of ``service``."""

    async def guarded(request: Request, work: Any) -> Response:
        if service.inflight >= service.max_inflight:
            return JSONResponse({"error": "overloaded: too many requests in flight; retry later"}, status_code=503)
        service.inflight += 1
        t0 = time.perf_counter()
        try:
            body = await work()
            status = 200
        except BadRequest as exc:
            body, status = {"error": str(exc)}, 400
        except MisuanError as exc:
            body, status = {"error": str(exc)}, 422
        finally:
            service.inflight -= 1
        log.info(json.dumps({"path": request.url.path, "status": status, "ms": round((time.perf_counter() - t0) * 1000, 2)}))
        return JSONResponse(body, status_code=status)

    async def decision(request: Request) -> Response:
        async def work() -> Any:
            applicant = _applicant(await _json(request), "body")
            result = (await run_in_threadpool(service.decide, [applicant]))[0]
            log.info(json.dumps({"applicant": hmac.new(_LOG_KEY, str(applicant["id"]).encode(), "sha256").hexdigest()[:12],
                                 "decision": result["decision"], "partner": result["partner_answered"]}))
            return result
        return await guarded(request, work)

    async def batch(request: Request) -> Response:
        async def work() -> Any:
            doc = await _json(request)
            apps = doc.get("applicants") if isinstance(doc, dict) else None
            if not isinstance(apps, list) or not 1 <= len(apps) <= MAX_BATCH:
                raise BadRequest(f"body.applicants: give a list of 1 to {MAX_BATCH} applicants")
            checked = [_applicant(a, f"body.applicants[{i}]") for i, a in enumerate(apps)]
            disclose = doc.get("disclosures", False)
            if not isinstance(disclose, bool):
                raise BadRequest("body.disclosures: true or false (default false: re-scoring offers no loan)")
            return {"results": await run_in_threadpool(lambda: service.decide(checked, disclose=disclose))}
        return await guarded(request, work)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "uptime_s": round(time.time() - service.started, 1)})

    async def readyz(request: Request) -> Response:
        ready = service.session.ready
        body = {"ready": ready, "partner": service.cfg.peer, "last_error": service.session.last_error or None}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def spec(request: Request) -> Response:
        return JSONResponse(openapi(service.cfg.model_id))

    async def page(request: Request) -> Response:
        q = request.query_params
        result: dict[str, Any] | None = None
        error = ""
        if q.get("id") and service.inflight >= service.max_inflight:
            error = "overloaded: too many requests in flight; retry later"
        elif q.get("id"):
            try:
                applicant = _applicant({k: _number(v) if k != "id" else v for k, v in q.items() if v != ""}, "form")
                result = (await run_in_threadpool(service.decide, [applicant]))[0]
            except (BadRequest, MisuanError) as exc:
                error = str(exc)
        return HTMLResponse(officer_page(service, result, error, dict(q)))

    return Starlette(routes=[
        Route("/v1/decisions", decision, methods=["POST"]), Route("/v1/decisions/batch", batch, methods=["POST"]),
        Route("/healthz", healthz), Route("/readyz", readyz), Route("/openapi.json", spec), Route("/", page),
    ])


def _number(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def openapi(model_id: str) -> dict[str, Any]:
    applicant = {"type": "object", "required": ["id"], "additionalProperties": False, "properties": {
        "id": {"type": "string", "description": "customer ID (normalised as the job's PSI step did)"},
        "amount": {"type": "number", "exclusiveMinimum": 0, "description": "requested amount; granted up to the limit"},
        "monthly_income": {"type": "number", "exclusiveMinimum": 0},
        "features": {"type": "object", "additionalProperties": {"type": ["number", "null"]},
                     "description": "the bank's own features; default: its feature store"}}}
    decision = {"type": "object", "properties": {k: {} for k in (
        "id", "pd", "score", "decision", "reasons", "limit", "rate", "amount", "annualised_rate", "disclosure",
        "adverse_action", "notice", "refer_because", "partner_answered", "model_id", "latency_ms")}}
    return {
        "openapi": "3.1.0", "info": {"title": "misuan decision API", "version": "1", "description": f"model {model_id}"},
        "paths": {
            "/v1/decisions": {"post": {"requestBody": {"content": {"application/json": {"schema": applicant}}},
                                       "responses": {"200": {"description": "the decision", "content": {"application/json": {"schema": decision}}},
                                                     "400": {"description": "malformed request"}, "503": {"description": "overloaded"}}}},
            "/v1/decisions/batch": {"post": {"requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"applicants": {"type": "array", "items": applicant, "maxItems": MAX_BATCH},
                                                 "disclosures": {"type": "boolean", "default": False}}}}}},
                "responses": {"200": {"description": "one decision per applicant, in order"}}}},
            "/healthz": {"get": {"responses": {"200": {"description": "the process serves"}}}},
            "/readyz": {"get": {"responses": {"200": {"description": "the partner session is up"}, "503": {"description": "not yet, or lost"}}}},
        },
    }


_CSS = """body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b2330}
main{max-width:980px;margin:0 auto;padding:24px}h1{font-size:22px}form{display:flex;gap:10px;flex-wrap:wrap;
background:#fff;padding:14px;border-radius:8px}label{display:flex;flex-direction:column;font-size:12px;color:#555}
input{padding:6px 8px;font-size:15px}button{padding:8px 16px;font-size:15px;background:#1d4ed8;color:#fff;border:0;
border-radius:6px}.card{background:#fff;border-radius:8px;padding:16px;margin:16px 0}.approve{color:#15803d}
.decline{color:#b91c1c}.refer{color:#b45309}table{border-collapse:collapse;width:100%}td,th{padding:5px 8px;
border-bottom:1px solid #e5e7eb;text-align:left}pre{white-space:pre-wrap;background:#f1f5f9;padding:10px}.err{color:#b91c1c}"""


def officer_page(service: BankService, result: dict[str, Any] | None, error: str, form: dict[str, str]) -> str:
    """The credit officer's page: the form, the decision (if any) and the recent decisions; all text escaped."""
    def field(name: str, label: str) -> str:
        return f'<label>{label}<input name="{name}" value="{escape(form.get(name, ""))}"></label>'
    parts = [f"<h1>Credit decision · model {escape(service.cfg.model_id)}</h1>",
             '<form method="get" action="/">' + field("id", "Customer ID") + field("amount", "Amount requested")
             + field("monthly_income", "Monthly income") + '<button type="submit">Decide</button></form>']
    if error:
        parts.append(f'<p class="err">{escape(error)}</p>')
    if result is not None:
        parts.append(_result_card(result))
    rows = "".join(f"<tr><td>{escape(str(r['at']))}</td><td>{escape(str(r['id']))}</td><td class=\"{escape(str(r['decision']))}\">"
                   f"{escape(str(r['decision']))}</td><td>{escape(str(r['score']))}</td><td>{escape(str(r['limit']))}</td>"
                   f"<td>{'yes' if r['partner_answered'] else 'no'}</td></tr>" for r in service.recent)
    parts.append('<div class="card"><h2>Recent decisions</h2><table><tr><th>time</th><th>customer</th><th>decision</th>'
                 f"<th>score</th><th>limit</th><th>partner answered</th></tr>{rows}</table></div>")
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>misuan · credit decision</title>"
            f"<style>{_CSS}</style></head><body><main>{''.join(parts)}</main></body></html>")


def _result_card(r: dict[str, Any]) -> str:
    d = str(r.get("decision"))
    lines = [f'<h2 class="{escape(d)}" id="decision">{escape(d.upper())}</h2>',
             f"<p>Customer {escape(str(r.get('id')))} · score <strong>{escape(str(r.get('score')))}</strong> · "
             f"PD {escape(_pct(r.get('pd')))}</p>"]
    if r.get("refer_because"):
        lines.append(f"<p class=refer>Refer: {escape(str(r['refer_because']))}</p>")
    if d == "approve":
        lines.append(f"<p>Limit {r.get('limit'):,.0f} · granted {r.get('amount'):,.0f} · annualised rate "
                     f"<strong>{escape(_pct(r.get('annualised_rate')))}</strong> ({escape(str(r.get('annualised_basis')))})</p>")
        lines.append(f"<pre>{escape(str(r.get('disclosure', '')))}</pre>")
    reasons = r.get("adverse_action") or r.get("reasons") or []
    if reasons:
        lines.append("<h3>Principal reasons</h3><ol>" + "".join(f"<li>{escape(x['en'])}</li>" for x in reasons) + "</ol>")
    if d == "decline" and r.get("notice"):
        lines.append(f"<pre>{escape(str(r['notice']))}</pre>")
    return f'<div class="card">{"".join(lines)}</div>'


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.2f} %"


class HttpServer:
    """uvicorn serving ``app`` on ``address`` in a thread (tests, ``misuan demo --serve``); :meth:`stop` ends it."""

    def __init__(self, app: Starlette, address: str) -> None:
        import threading

        import uvicorn

        host, port = address.rsplit(":", 1)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=int(port), log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="misuan-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise MisuanError(f"the decision API could not start on {address}")
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_forever(service: BankService) -> None:
    """Serve ``service``'s API on its ``http`` address in this thread until Ctrl-C (``misuan serve``)."""
    import uvicorn

    assert service.cfg.http is not None
    host, port = service.cfg.http.rsplit(":", 1)
    uvicorn.run(create_app(service), host=host, port=int(port), log_level="warning", access_log=False)
