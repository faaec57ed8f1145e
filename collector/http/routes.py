"""The HTTP endpoints. Every answer, error or not, is JSON that says what to do next."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.utils import cached_property

from collector import __version__
from collector.errors import CollectorError
from collector.http.errors import error_answer
from collector.http.params import metric_request, no_params, request_params
from collector.metrics.answer import MetricRequest
from collector.metrics.by_event import NameCounts
from collector.metrics.registry import REGISTRY

log = logging.getLogger("collector.http")
bp = Blueprint("metrics", __name__)
METHODS = ["GET", "POST"]
SUMMARY_NAMES = 50  # event names in a summary log entry: the most counted ones
SUMMARY_BYTES = 64 * 1024


def _runtime() -> Any:
    return current_app.extensions["collector"]


def _answer(metric: str, build: Any) -> tuple[Any, int]:
    """Run one metric request and write the one summary log entry it owes."""
    rt = _runtime()
    started = time.monotonic()
    metric_request: MetricRequest | None = None
    try:
        metric_request = build(request_params(), rt)
        body = rt.answering.answer(metric_request).as_dict()
        status = 200
    except CollectorError as exc:
        body, status = error_answer(exc)
    summary = {
        "metric": metric_request.metric if metric_request else metric,
        "status": status,
        "seconds": round(time.monotonic() - started, 3),
        **{k: v for k, v in body.items() if k not in {"metric", "export"}},
    }
    if "export" in body:
        summary["export"] = body["export"]
    _bound(summary)
    level = logging.INFO if status == 200 else logging.WARNING
    text = (
        f"{summary['metric']}: {body.get('value')} complete={body.get('complete')}"
        if status == 200
        else f"{summary['metric']}: {status} {body.get('error', '')}"
    )
    log.log(level, text, extra={"json_fields": {"summary": True, **summary}})
    return jsonify(body), status


def _bound(summary: dict[str, Any]) -> None:
    """Keep the summary entry small whatever the answer: Cloud Logging refuses entries over
    256 KB, and a window can hold a million event names. The answer itself keeps them all."""
    by_event = summary.get("by_event")
    if isinstance(by_event, NameCounts):
        summary["by_event"] = by_event.top(SUMMARY_NAMES)
        if len(by_event) > SUMMARY_NAMES:
            summary["by_event_omitted"] = len(by_event) - SUMMARY_NAMES
    if len(json.dumps(summary, default=str)) > SUMMARY_BYTES:
        for key in ("by_event", "event"):
            if key in summary:
                summary[f"{key}_omitted"] = len(summary.pop(key))


def _metric_route(name: str) -> Callable[[], Any]:
    def route() -> Any:
        return _answer(name, lambda p, rt: metric_request(name, p, rt.settings, rt.now()))

    route.__name__ = name  # the endpoint's name in Flask
    return route


# One route a metric, from the registry.
for _metric in REGISTRY.values():
    bp.add_url_rule(_metric.path, view_func=_metric_route(_metric.name), methods=METHODS)


@bp.route("/healthz", methods=["GET"])
def healthz() -> Any:
    # Liveness only: never spends an Export query.
    try:
        no_params("/healthz")
    except CollectorError as exc:
        body, status = error_answer(exc)
        return jsonify(body), status
    left = _runtime().budget.remaining()
    return jsonify({"status": "ok", "version": __version__, "queries_left_this_hour": left})


class _BoundedJSON(DefaultJSONProvider):
    """JSON nested deeper than the parser's recursion limit is invalid JSON, not a crash; and
    answers are encoded straight to bytes (msgspec): an answer with a million event names
    would otherwise be held as text and again as bytes."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

    @staticmethod
    def default(o: Any) -> Any:
        if isinstance(o, NameCounts):
            return dict(o.items())
        return DefaultJSONProvider.default(o)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        try:
            data = encode_answer(obj)
        except (TypeError, msgspec.EncodeError):
            return super().response(obj)  # something msgspec does not know: the usual way
        return self._app.response_class(data, mimetype=self.mimetype)


def _encode_hook(o: Any) -> Any:
    if isinstance(o, NameCounts):
        return msgspec.Raw(o.to_json())
    raise TypeError(f"cannot encode {type(o).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_encode_hook)


def encode_answer(obj: Any) -> bytes:
    """An answer as the routes send it: JSON bytes, `by_event` written straight from arrays."""
    return _encoder.encode(obj)


class _Request(Request):
    """A query string that is not UTF-8 reaches the parameter checks instead of raising.

    werkzeug decodes the raw query string strictly (a raw byte 0xFF would raise
    UnicodeDecodeError out of `request.args`, a 500) and keeps an invalid %FF as the text
    "%FF" (a name nobody sent). Both become lone surrogates here, which `merge_params`
    refuses with a 400 naming the parameter.
    """

    @cached_property
    def args(self) -> MultiDict[str, str]:  # type: ignore[override]
        text = self.query_string.decode("utf-8", "surrogateescape")
        return self.parameter_storage_class(
            parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
        )


ENDPOINTS = "/distinct-users, /events, /active-users, /check, /rules, /status, /healthz"
FREE_HEAD = frozenset({"/healthz", "/rules", "/status"})  # they spend no Export query


@bp.before_app_request
def _no_head() -> Any:
    # Flask answers HEAD with the GET view, which would spend an Export query for no body.
    if request.method == "HEAD" and request.url_rule and request.path not in FREE_HEAD:
        return jsonify(
            {"error": "405 Method Not Allowed", "code": "http_error", "hint": _methods_hint()}
        ), 405
    return None


def _methods_hint(methods: Any = None) -> str:
    """'use GET' or 'use GET or POST': what this path answers, in the caller's terms."""
    allowed = methods or (request.url_rule.methods if request.url_rule else ())
    shown = [m for m in ("GET", "POST") if m in allowed] or sorted(allowed)
    return f"use {' or '.join(shown)} for {request.path[:100]}"


def register_errors(app: Flask) -> None:
    app.request_class = _Request  # every route: these and /check
    # Every body parser (these routes, /check) reads through app.json: a body of 30,000 "["
    # fits in MAX_BODY_BYTES and would raise RecursionError, which get_json does not catch.
    bounded = _BoundedJSON(app)
    bounded.sort_keys = app.json.sort_keys  # type: ignore[attr-defined]
    app.json = bounded

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        hints = {
            404: f"endpoints: {ENDPOINTS}",
            413: "the request body is too large; send a small JSON object",
        }
        hint = hints.get(exc.code or 0, exc.description)
        if exc.code == 405:
            hint = _methods_hint(getattr(exc, "valid_methods", None))
        body = {"error": f"{exc.code} {exc.name}", "code": "http_error", "hint": hint}
        return jsonify(body), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        # The outermost boundary: log the traceback, answer JSON without internals.
        log.exception("unexpected error while serving %s", request.path)
        return jsonify(
            {
                "error": "internal error: the collector logged the details; "
                "retry, and report it if it persists",
                "code": "internal_error",
            }
        ), 500
