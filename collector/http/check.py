"""`/check`: evaluate the alert rules (all, or those named in `rule=`) in one export pass."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from collector.errors import BadRequest, CollectorError
from collector.http.params import merge_params

log = logging.getLogger("collector.http")
bp = Blueprint("check", __name__)


class NotConfigured(CollectorError):
    status = 503
    code = "not_configured"


@bp.route("/check", methods=["GET", "POST"])
def check() -> Any:
    rt = current_app.extensions["collector"]
    started = time.monotonic()
    try:
        if rt.checker is None:
            raise NotConfigured(
                "no alert rules are configured: set COLLECTOR_RULES to a rules "
                "file (see rules.example.yaml)"
            )
        body_json = request.get_json(silent=True) if request.content_length else None
        if request.content_length and body_json is None:
            raise BadRequest("the request body is not a JSON object")
        params = merge_params(request.args.to_dict(flat=False), body_json)
        unknown = sorted(set(params) - {"rule"})
        if unknown:
            raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}; allowed: rule")
        body, status = rt.checker.run(params.get("rule", [])), 200
    except CollectorError as exc:
        body, status = exc.body(), exc.status
    states = [r["state"] for r in body.get("rules", [])]
    log.log(
        logging.INFO if status == 200 else logging.WARNING,
        "check: %s",
        ", ".join(states) or body.get("error", ""),
        extra={
            "json_fields": {
                "summary": True,
                "metric": "check",
                "status": status,
                "seconds": round(time.monotonic() - started, 3),
                "rules": len(states),
                "queries": body.get("queries"),
                "states": {s: states.count(s) for s in set(states)},
            }
        },
    )
    return jsonify(body), status
