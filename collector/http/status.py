"""`GET /status`: the rules at a glance as a small read-only HTML page (the data of /rules).

No script at all: the page refreshes itself every minute with a meta tag, and its Content
Security Policy allows nothing but its own inline style, so even a value that slipped past the
escaping could not run. Every value is escaped by Jinja's autoescaping (rule names are safe by
the rules file's grammar, but a receiver's error text, kept as `last_error`, is anyone's HTML).
Links are relative, so the page also works behind `gcloud run services proxy`. A failure
answers JSON, like every other endpoint.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template_string

from collector import __version__
from collector.alerting.message import condition_text, number
from collector.errors import CollectorError
from collector.http.errors import error_answer
from collector.http.rules import rules_view

bp = Blueprint("status", __name__)
REFRESH_SECONDS = 60
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>Rule status · rt-mp-collector</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  .meta { color: #555; margin: 0 0 1rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; vertical-align: top; padding: .45rem .6rem;
           border-bottom: 1px solid #ddd; }
  th { background: #f4f4f6; font-weight: 600; }
  small { color: #555; }
  .time { white-space: nowrap; }
  .badge { display: inline-block; padding: .05rem .45rem; border-radius: .6rem;
           font-weight: 600; font-size: .8rem; background: #e5e5ea; }
  .ALERTING .badge { background: #ffd9d6; color: #a30d00; }
  .OK .badge { background: #d8f5dd; color: #0b6b1d; }
  .NO_DATA .badge, .ERROR .badge { background: #fff0c2; color: #7a5200; }
  .error { color: #a30d00; overflow-wrap: anywhere; }
  footer { margin-top: 1rem; color: #555; }
</style>
</head>
<body>
<h1>Rule status</h1>
<p class="meta">rt-mp-collector {{ version }} · {{ rules|length }} rules, {{ firing }} firing,
{{ view.pending }} notifications pending · state store <code>{{ view.store }}</code> ·
read {{ view.read_at }} (UTC), no Export query · refreshed every {{ refresh }} s</p>
<table>
<thead><tr><th>Rule</th><th>State</th><th>Since</th><th>Last value</th><th>Fires when</th>
<th>Last check</th><th>Pending notifications</th></tr></thead>
<tbody>
{% for r in rules %}
<tr class="{{ r.state }}" id="rule-{{ r.name }}">
<td><strong>{{ r.name }}</strong><br><small>{{ r.metric }}{% if r.events %}
({{ r.events|join(", ") }}){% endif %}, {{ r.window_minutes }} min, {{ r.severity }}</small></td>
<td><span class="badge">{{ r.state }}</span>
{% if r.firing %}<br><small>firing</small>{% endif %}</td>
<td class="time">{{ r.since or "—" }}</td>
<td>{{ r.shown_value }}
{% if r.complete is false %}<br><small>lower bound (partial export)</small>{% endif %}</td>
<td>{{ r.fires_when }}</td>
<td class="time">{{ r.checked_at or "never" }}</td>
<td>{% for p in r.pending %}<div>{{ p.kind }} to {{ p.notifier }}, {{ p.attempts }} attempt(s)
{% if p.last_error %}<br><small class="error">{{ p.last_error }}</small>{% endif %}</div>
{% else %}—{% endfor %}</td>
</tr>
{% endfor %}
</tbody>
</table>
{% if view.retired_rules %}<p>State kept for rules no longer in the rules file:
{{ view.retired_rules|join(", ") }}.</p>{% endif %}
<footer>The same as JSON: <a href="rules">/rules</a>. A dry run of the rules:
<a href="check?dry_run=1">/check?dry_run=1</a> (it spends an Export query).</footer>
</body>
</html>
"""


@bp.route("/status", methods=["GET"])
def status() -> Any:
    try:
        view = rules_view()
    except CollectorError as exc:
        body, code = error_answer(exc)
        return jsonify(body), code
    rules = [_shown(r) for r in view["rules"]]
    html = render_template_string(
        PAGE,
        view=view,
        rules=rules,
        firing=sum(r["firing"] for r in rules),
        version=__version__,
        refresh=REFRESH_SECONDS,
    )
    return Response(html, mimetype="text/html", headers=HEADERS)


def _shown(rule: dict[str, Any]) -> dict[str, Any]:
    value = rule["value"]
    return {
        **rule,
        "shown_value": "—" if value is None else number(value),
        "fires_when": condition_text(rule["condition"], rule["threshold"]),
    }
