"""`/check`: evaluate the alert rules (all, or those named in `rule=`) in one export pass;
`dry_run=1` evaluates them and shows what would be notified, saving and sending nothing."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify

from collector.errors import CollectorError, NotConfigured
from collector.http.errors import error_answer
from collector.http.params import check_request, request_params

log = logging.getLogger("collector.http")
bp = Blueprint("check", __name__)


@bp.route("/check", methods=["GET", "POST"])
def check() -> Any:
    rt = current_app.extensions["collector"]
    started = time.monotonic()
    try:
        # Query string and JSON body (chunked or not), read as the metric routes read them:
        # a malformed request is the caller's to fix, with or without rules.
        asked = check_request(request_params())
        if rt.checker is None:
            raise NotConfigured(
                "no alert rules are configured: set COLLECTOR_RULES to a rules "
                "file (see rules.example.yaml)"
            )
        body, status = rt.checker.run(asked.rules, dry_run=asked.dry_run), 200
    except CollectorError as exc:
        body, status = error_answer(exc)
    _summary(body, status, time.monotonic() - started)
    return jsonify(body), status


def _summary(body: dict[str, Any], status: int, seconds: float) -> None:
    """The one summary entry of a /check, failed or not (ops/ counts failures by `code`)."""
    states = [r["state"] for r in body.get("rules", [])]
    fields: dict[str, Any] = {
        "summary": True,
        "metric": "check",
        "status": status,
        "seconds": round(seconds, 3),
        "rules": len(states),
        "queries": body.get("queries"),
        "states": {s: states.count(s) for s in set(states)},
    }
    if body.get("dry_run"):
        fields["dry_run"] = True
    if "notifications" in body:
        fields["notifications"] = body["notifications"]
    if status != 200:
        fields.update(code=body.get("code"), error=body.get("error"))
    log.log(
        logging.INFO if status == 200 else logging.WARNING,
        "check: %s",
        ", ".join(states) or body.get("error", ""),
        extra={"json_fields": fields},
    )
