"""`GET /rules`: every rule's state from the state store, without an Export query."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from collector.alerting.preflight import read_state
from collector.alerting.view import rule_states
from collector.errors import CollectorError, NotConfigured
from collector.http.errors import error_answer
from collector.http.params import no_params
from collector.window import iso

bp = Blueprint("rules", __name__)


def rules_view() -> dict[str, Any]:
    """The rules at a glance (collector.alerting.view), with where and when they were read.

    Raises NotConfigured without rules, StateStoreUnavailable if the store cannot be read.
    """
    rt = current_app.extensions["collector"]
    if rt.checker is None:
        raise NotConfigured(
            "no alert rules are configured: set COLLECTOR_RULES to a rules file "
            "(see rules.example.yaml)"
        )
    doc = read_state(rt.checker.store, "nothing was queried and nothing changed")
    return {
        **rule_states(rt.checker.rules, doc),
        "store": rt.checker.store.describe(),
        "read_at": iso(rt.now()),
        "queries": 0,
    }


@bp.route("/rules", methods=["GET"])
def rules() -> Any:
    try:
        no_params("/rules")
        return jsonify(rules_view())
    except CollectorError as exc:
        body, code = error_answer(exc)
        return jsonify(body), code
