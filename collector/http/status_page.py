"""The templates of `GET /status`: the rules at a glance, and the page of an error.

No script at all; one inline style (the Content-Security-Policy of `collector.http.status`
allows nothing else). Below 40rem (a phone, a narrow window) the table becomes one card per
rule, each value under its column's name (`data-label`), so nothing scrolls sideways.
"""

from __future__ import annotations

STYLE = """<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  .meta { color: #555; margin: 0 0 1rem; }
  code, .error { overflow-wrap: anywhere; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; vertical-align: top; padding: .45rem .6rem;
           border-bottom: 1px solid #ddd; overflow-wrap: break-word; }
  th { background: #f4f4f6; font-weight: 600; }
  small { color: #555; }
  time { text-decoration: underline dotted #999; }
  .time { white-space: nowrap; }
  .badge { display: inline-block; padding: .05rem .45rem; border-radius: .6rem;
           font-weight: 600; font-size: .8rem; background: #e5e5ea; white-space: nowrap; }
  .ALERTING .badge { background: #ffd9d6; color: #a30d00; }
  .OK .badge { background: #d8f5dd; color: #0b6b1d; }
  .NO_DATA .badge, .ERROR .badge { background: #fff0c2; color: #7a5200; }
  .error { color: #a30d00; }
  footer { margin-top: 1rem; color: #555; }
  @media (max-width: 40rem) {
    body { margin: .75rem; }
    thead { display: none; }
    table, tbody, tr, td { display: block; }
    tr { border: 1px solid #ddd; border-radius: .5rem; margin: 0 0 .75rem; padding: .3rem 0; }
    td { border: 0; padding: .2rem .7rem; }
    td::before { content: attr(data-label); display: block; color: #555;
                 font-size: .8rem; font-weight: 600; }
  }
</style>"""

# One moment: `3 min ago`, the UTC time on hover.
WHEN = """{% macro when(t, absent) %}{% if t %}<time datetime="{{ t.iso }}" title="{{ t.utc }}">
{{- t.ago }}</time>{% else %}{{ absent }}{% endif %}{% endmacro %}"""

PAGE = (
    WHEN
    + """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{ refresh }}">
<title>Rule status · rt-mp-collector</title>
"""
    + STYLE
    + """
</head>
<body>
<h1>Rule status</h1>
<p class="meta">rt-mp-collector {{ version }} · {{ rules|length }} rules, {{ firing }} firing,
{{ view.pending }} notifications pending · state store <code>{{ view.store }}</code> ·
read at {{ read_at }}, no Export query · refreshed every {{ refresh }} s</p>
<table>
<thead><tr><th>Rule</th><th>State</th><th>Since</th><th>Last value</th><th>Fires when</th>
<th>Last check</th><th>Pending notifications</th></tr></thead>
<tbody>
{% for r in rules %}
<tr class="{{ r.state }}" id="rule-{{ r.name }}">
<td data-label="Rule"><strong>{{ r.name }}</strong><br><small>{{ r.metric }}{% if r.events %}
({{ r.events|join(", ") }}){% endif %}, {{ r.window_minutes }} min, {{ r.severity }}</small></td>
<td data-label="State"><span class="badge">{{ r.state }}</span>
{% if r.firing %}<br><small>firing</small>{% endif %}</td>
<td class="time" data-label="Since">{{ when(r.since_shown, "—") }}</td>
<td data-label="Last value">{{ r.shown_value }}
{% if r.complete is false %}<br><small>lower bound (partial export)</small>{% endif %}</td>
<td data-label="Fires when">{{ r.fires_when }}</td>
<td class="time" data-label="Last check">{{ when(r.checked_shown, "never") }}</td>
<td data-label="Pending notifications">
{%- for p in r.pending %}<div>{{ p.kind }} to {{ p.notifier }}, {{ p.attempts }} attempt(s)
{% if p.last_error %}<br><small class="error">{{ p.last_error }}</small>{% endif %}</div>
{% else %}—{% endfor %}</td>
</tr>
{% endfor %}
</tbody>
</table>
{% if view.retired_rules %}<p>State kept for rules no longer in the rules file:
{{ view.retired_rules|join(", ") }}.</p>{% endif %}
<footer>Times are UTC on hover. The same as JSON: <a href="rules">/rules</a>. A dry run of the
rules: <a href="check?dry_run=1">/check?dry_run=1</a> (it spends an Export query).</footer>
</body>
</html>
"""
)

# An error as a page, not the JSON of the other endpoints: /status is opened in a browser.
ERROR_PAGE = (
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% if refresh %}<meta http-equiv="refresh" content="{{ refresh }}">
{% endif %}<title>{{ title }} · rt-mp-collector</title>
"""
    + STYLE
    + """
</head>
<body>
<h1>{{ title }}</h1>
<p class="error">{{ error }}</p>
<p class="meta">HTTP {{ status }}, <code>{{ code }}</code> · rt-mp-collector {{ version }}</p>
{% if refresh %}<p>This page tries again every {{ refresh }} s, and shows the rules once the
cause is fixed. The same answer as JSON: <a href="rules">/rules</a>.</p>
{% else %}<p>The page takes no parameters: <a href="status">/status</a>.</p>
{% endif %}
</body>
</html>
"""
)
