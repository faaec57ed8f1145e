"""The files in ops/ against the log entries the service really writes.

The service runs against the simulator with faults (partial answers, failed attempts, every
failure code), its JSON log lines are captured and turned into the LogEntry shape Cloud Run
gives them, and then every log filter and extractor in ops/ is evaluated on those entries: each
filter must match some, every extracted field must be present with the type its metric needs,
and every `jsonPayload.<path>` a filter names must be seen with the type the filter compares.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml

from collector import errors
from collector.alerting import decide
from collector.alerting.message import KIND_ICONS
from collector.alerting.rule_fields import SEVERITIES as RULE_SEVERITIES
from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.metrics.registry import REGISTRY as METRICS_SERVED
from collector.simulator import Fault, Simulator
from collector.stores import file_document
from tests.conftest import past_window
from tests.helpers import make_settings

ROOT = Path(__file__).resolve().parent.parent
OPS = ROOT / "ops"
SERVICE = "rt-mp-collector"
# Keys Cloud Run's agent lifts out of a JSON line; everything else lands under jsonPayload.
SPECIAL_PREFIX = "logging.googleapis.com/"
LIFTED = {"severity", "httpRequest", "time", "timestamp"}
SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT"]


# -- the captured entries -------------------------------------------------------------------------


def as_log_entry(line: dict[str, Any]) -> dict[str, Any]:
    """One stdout JSON line as Cloud Logging stores it for a Cloud Run revision."""
    return {
        "resource": {"type": "cloud_run_revision", "labels": {"service_name": SERVICE}},
        "severity": line.get("severity", "DEFAULT"),
        "labels": line.get(SPECIAL_PREFIX + "labels", {}),
        "jsonPayload": {
            k: v for k, v in line.items() if k not in LIFTED and not k.startswith(SPECIAL_PREFIX)
        },
    }


@pytest.fixture(scope="module")
def entries(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    window = past_window()
    span = urlencode({"from": window.start.isoformat(), "to": window.end.isoformat()})
    env = {"LOG_FORMAT": "json", "GOOGLE_CLOUD_PROJECT": "rt-mp-test", "EXPORT_MAX_ATTEMPTS": "2"}
    out = io.StringIO()
    # The handler is built on whatever sys.stdout is when the app is created, as on Cloud Run.
    with contextlib.redirect_stdout(out):
        client = create_app(make_settings(sim.url, **env)).test_client()
        assert client.get(f"/events?{span}").status_code == 200
        sim.script([Fault.reset(after_bytes=2000), Fault.status(503)])
        assert client.get(f"/distinct-users?{span}").json["complete"] is False
        sim.script([Fault.cut_silent(after_bytes=3000)])
        assert client.get(f"/distinct-users?{span}").json["export"]["attempts"] == 2
        sim.script([Fault.status(503), Fault.status(503)])
        assert client.get(f"/events?{span}").status_code == 503
        sim.script([Fault.status(401)])
        assert client.get(f"/distinct-users?{span}").status_code == 502
        assert client.get("/events?minutes=abc").status_code == 400
        sim.clear_faults()
        one_query = create_app(make_settings(sim.url, EXPORT_QUERIES_PER_HOUR="1", **env))
        assert one_query.test_client().get(f"/events?{span}").status_code == 200
        assert one_query.test_client().get(f"/events?{span}").json["code"] == "budget_exhausted"
        rules = parse_rules(
            {
                "notifiers": {"log": {"type": "log"}},
                "rules": [
                    {
                        "name": "busy",
                        "metric": "events",
                        "window_minutes": 30,
                        "above": 1,
                        "notify": ["log"],
                    },
                    {"name": "quiet", "metric": "distinct_users", "window_minutes": 30, "below": 1},
                    {"name": "dropped", "metric": "events", "window_minutes": 30, "drop_pct": 50},
                ],
            },
            {},
        )
        store = file_document(tmp_path_factory.mktemp("state") / "state.json")
        checker = create_app(make_settings(sim.url, **env), rules=rules, store=store)
        assert checker.test_client().get("/check").status_code == 200
        sim.script([Fault.status(503), Fault.status(503)])
        assert checker.test_client().get("/check").json["rules"][0]["state"] == "ERROR"
    lines = [json.loads(text) for text in out.getvalue().splitlines() if text.strip()]
    # The handler's one-off diagnostic line belongs to the library, not to the service.
    ours = [line for line in lines if "logging.googleapis.com/diagnostic" not in line["message"]]
    return [as_log_entry(line) for line in ours]


# -- the Logging query language, as far as ops/ uses it -------------------------------------------


@dataclass(frozen=True)
class Comparison:
    path: str
    op: str
    literal: str  # as written, quotes removed
    kind: str  # "string", "number", "bool", "presence", "severity"
    negated: bool = False


_TOKEN = re.compile(
    r'\s*(?:(?P<paren>[()])|(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|[=<>:])'
    r"|(?P<word>[A-Za-z0-9_.*/-]+))"
)


class FilterSyntaxError(ValueError):
    pass


def parse_filter(text: str) -> Any:
    """A tree of ("and"|"or", [...]), ("not", x) and Comparison; OR binds tighter than AND."""
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise FilterSyntaxError(f"cannot read {text[pos : pos + 20]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        pos = match.end()
    tree, rest = _and(tokens, False)
    if rest:
        raise FilterSyntaxError(f"unexpected {rest[0][1]!r}")
    return tree


def _and(tokens: list, negated: bool) -> tuple[Any, list]:
    parts, tokens = [], list(tokens)
    while tokens and tokens[0] != ("paren", ")"):
        if tokens[0] == ("word", "AND"):
            tokens = tokens[1:]
        part, tokens = _or(tokens, negated)
        parts.append(part)
    return ("and", parts), tokens


def _or(tokens: list, negated: bool) -> tuple[Any, list]:
    parts = []
    part, tokens = _unary(tokens, negated)
    parts.append(part)
    while tokens and tokens[0] == ("word", "OR"):
        part, tokens = _unary(tokens[1:], negated)
        parts.append(part)
    return ("or", parts), tokens


def _unary(tokens: list, negated: bool) -> tuple[Any, list]:
    if not tokens:
        raise FilterSyntaxError("the filter ends too early")
    if tokens[0] == ("word", "NOT"):
        inner, rest = _unary(tokens[1:], not negated)
        return ("not", inner), rest
    if tokens[0] == ("paren", "("):
        inner, rest = _and(tokens[1:], negated)
        if not rest or rest[0] != ("paren", ")"):
            raise FilterSyntaxError("missing ')'")
        return inner, rest[1:]
    if len(tokens) < 3 or tokens[0][0] != "word" or tokens[1][0] != "op":
        raise FilterSyntaxError(f"expected FIELD OP VALUE at {tokens[0][1]!r}")
    (_, path), (_, op), (vkind, value) = tokens[:3]
    literal = json.loads(value) if vkind == "string" else value
    if path == "severity":
        kind = "severity"
    elif op == ":" and value == "*":
        kind = "presence"
    elif vkind == "string":
        kind = "string"
    elif value in ("true", "false"):
        kind = "bool"
    elif re.fullmatch(r"-?\d+(\.\d+)?", value):
        kind = "number"
    else:
        raise FilterSyntaxError(f"{path}{op}{value}: quote string values")
    return Comparison(path, op, literal, kind, negated), tokens[3:]


def lookup(entry: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def evaluate(tree: Any, entry: dict[str, Any], mismatches: set[str]) -> bool:
    if isinstance(tree, Comparison):
        return _compare(tree, entry, mismatches)
    kind, inner = tree
    if kind == "not":
        return not evaluate(inner, entry, mismatches)
    results = (evaluate(part, entry, mismatches) for part in inner)
    return all(results) if kind == "and" else any(results)


def _compare(c: Comparison, entry: dict[str, Any], mismatches: set[str]) -> bool:
    found, value = lookup(entry, c.path)
    if not found or value is None:
        return False
    if c.kind == "presence":
        return True
    if c.kind == "severity":
        left, right = SEVERITIES.index(value), SEVERITIES.index(c.literal.upper())
        return _ordered(c.op, left, right)
    if type_of(value) != c.kind:
        mismatches.add(f"{c.path} is compared as a {c.kind} but emitted as {type_of(value)}")
        return False
    if c.kind == "bool":
        return c.op in ("=", ":") and value == (c.literal == "true")
    if c.kind == "number":
        return _ordered(c.op, value, float(c.literal))
    if c.op == ":":
        return c.literal.lower() in value.lower()
    return _ordered(c.op, value.lower(), c.literal.lower())  # Logging compares text without case


def _ordered(op: str, left: Any, right: Any) -> bool:
    return {
        "=": left == right,
        ":": left == right,
        "!=": left != right,
        ">": left > right,
        "<": left < right,
        ">=": left >= right,
        "<=": left <= right,
    }[op]


def comparisons(tree: Any) -> Iterator[Comparison]:
    if isinstance(tree, Comparison):
        yield tree
    elif tree[0] == "not":
        yield from comparisons(tree[1])
    else:
        for part in tree[1]:
            yield from comparisons(part)


# -- the checker ----------------------------------------------------------------------------------


@dataclass
class LogQuery:
    """A log filter in ops/, with the value and label extractors that read its entries."""

    where: str
    filter: str
    value: str | None = None
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (extractor, type)

    def texts(self) -> list[str]:
        return [
            self.filter,
            *([self.value] if self.value else []),
            *(e for e, _ in self.labels.values()),
        ]


_EXTRACT = re.compile(
    r'^(?:EXTRACT\((?P<path>[\w.]+)\)|REGEXP_EXTRACT\((?P<rpath>[\w.]+),\s*"(?P<re>.*)"\))$'
)
LABEL_TYPES = {"INT64": ("number",), "BOOL": ("bool",), "STRING": ("string", "number", "bool")}


def extract(extractor: str, entry: dict[str, Any]) -> tuple[bool, Any]:
    match = _EXTRACT.match(extractor.strip())
    if not match:
        raise FilterSyntaxError(f"cannot read the extractor {extractor!r}")
    found, value = lookup(entry, match["path"] or match["rpath"])
    if found and match["re"] is not None:
        hit = re.search(match["re"], str(value))
        return (hit is not None), (hit.group(1) if hit else None)
    return found, value


def check(query: LogQuery, entries: list[dict[str, Any]]) -> list[str]:
    """Every way `query` disagrees with what the service logs; empty when it is sound."""
    try:
        tree = parse_filter(query.filter)
    except FilterSyntaxError as exc:
        return [f"{query.where}: filter: {exc}"]
    mismatches: set[str] = set()
    matched = [e for e in entries if evaluate(tree, e, mismatches)]
    problems = [f"{query.where}: {m}" for m in sorted(mismatches)]
    if not matched:
        return [*problems, f"{query.where}: the filter matches none of the {len(entries)} entries"]
    for c in comparisons(tree):
        seen = any(lookup(e, c.path)[0] for e in matched)
        if c.path.startswith("jsonPayload.") and not c.negated and not seen:
            problems.append(f"{query.where}: {c.path} is never present in matching entries")
    wanted = [("value", query.value, ("number",))] if query.value else []
    wanted += [(f"label {k}", ex, LABEL_TYPES[t]) for k, (ex, t) in query.labels.items()]
    for what, extractor, types in wanted:
        for entry in matched:
            found, value = extract(extractor, entry)
            if not found or type_of(value) not in types:
                got = type_of(value) if found else "missing"
                problems.append(
                    f"{query.where}: {what} {extractor} is {got} in a matching entry "
                    f"(needs {' or '.join(types)}): {entry['jsonPayload'].get('message')!r}"
                )
                break
    return problems


def metric_query(name: str, data: dict[str, Any]) -> LogQuery:
    types = {
        label["key"]: label.get("valueType", "STRING")
        for label in data.get("metricDescriptor", {}).get("labels", [])
    }
    return LogQuery(
        where=name,
        filter=data["filter"],
        value=data.get("valueExtractor"),
        labels={k: (v, types.get(k, "STRING")) for k, v in data.get("labelExtractors", {}).items()},
    )


def log_queries(where: str, data: Any) -> list[LogQuery]:
    """Every log filter in a parsed ops file: metrics at the top, log panels deeper down."""
    if isinstance(data, dict) and "metricDescriptor" in data:
        return [metric_query(where, data)]
    found: list[LogQuery] = []
    if isinstance(data, dict):
        text = data.get("filter")
        if isinstance(text, str) and "metric.type" not in text:
            found.append(LogQuery(where=where, filter=text))
        for key, value in data.items():
            found += log_queries(f"{where}.{key}", value)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += log_queries(f"{where}[{i}]", value)
    return found


def ops_files() -> dict[str, Any]:
    files = sorted(OPS.rglob("*.yaml")) + sorted(OPS.rglob("*.json"))
    return {str(p.relative_to(ROOT)): yaml.safe_load(p.read_text()) for p in files}


def strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings(value)


QUERIES = [q for where, data in ops_files().items() for q in log_queries(where, data)]
METRICS = {Path(w).stem: metric_query(w, d) for w, d in ops_files().items() if "metrics/" in w}


# -- the tests ------------------------------------------------------------------------------------


def test_the_service_emits_the_entries_the_ops_files_are_about(entries) -> None:
    payloads = [e["jsonPayload"] for e in entries]
    summaries = [p for p in payloads if p.get("summary") is True]
    attempts = [p for p in payloads if "kind" in p and "next" in p]
    assert {p["status"] for p in summaries} == {200, 400, 502, 503}
    assert {p.get("code") for p in summaries} == {
        None,
        "bad_request",
        "upstream_refused",
        "upstream_unavailable",
        "budget_exhausted",
    }
    assert {p["complete"] for p in summaries if "complete" in p} == {True, False}
    # A refused query spent a query too: it is a failed attempt like the others.
    kinds = {p["kind"] for p in attempts}
    assert kinds == {"connection_broken", "http_5xx", "truncated", "http_401"}
    assert all(
        e["labels"] == {"python_logger": "collector.http"}
        for e in entries
        if e["jsonPayload"].get("summary")
    )
    # The log line keeps its own `message`; the attempt's error text travels as `error`.
    assert attempts[0]["message"] == "export attempt 1 failed: connection_broken"
    assert attempts[0]["error"] and attempts[0]["error"] != attempts[0]["message"]


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_every_log_filter_and_extractor_in_ops_reads_emitted_fields(query, entries) -> None:
    assert check(query, entries) == []


def test_every_jsonpayload_reference_in_ops_is_checked() -> None:
    checked = {text for q in QUERIES for text in q.texts()}
    for where, data in ops_files().items():
        unchecked = [s for s in strings(data) if "jsonPayload" in s and s not in checked]
        assert unchecked == [], f"{where} refers to log fields outside a checked filter"
    assert {q.where for q in QUERIES} >= {f"ops/metrics/{name}.yaml" for name in METRICS}


def test_dashboard_and_policies_use_declared_metrics_labels_and_emitted_values(entries) -> None:
    problems = []
    files = {w: d for w, d in ops_files().items() if w.endswith(".json")}
    units = [
        (w, t["widget"])
        for w, d in files.items()
        for t in d.get("mosaicLayout", {}).get("tiles", [])
    ]
    units += [(w, c) for w, d in files.items() for c in d.get("conditions", [])]
    for where, unit in units:
        text = " ".join(strings(unit))
        for name in re.findall(r"logging\.googleapis\.com/user/([\w-]+)", text):
            query = METRICS.get(name)
            if query is None:
                problems.append(f"{where}: no ops/metrics/{name}.yaml")
                continue
            for key in re.findall(r"metric\.labels?\.(\w+)", text):
                if key not in query.labels:
                    problems.append(f"{where}: {name} has no label {key!r}")
            seen = _label_values(query, entries)
            for key, single, several in re.findall(
                r'metric\.labels?\.(\w+)\s*=\s*(?:"([^"]*)"|one_of\(([^)]*)\))', text
            ):
                for value in [single] if single else re.findall(r'"([^"]*)"', several):
                    if value not in seen.get(key, set()):
                        problems.append(f"{where}: {name} never has {key}={value!r}")
    assert problems == []


def _label_values(query: LogQuery, entries: list[dict[str, Any]]) -> dict[str, set[str]]:
    tree = parse_filter(query.filter)
    matched = [e for e in entries if evaluate(tree, e, set())]
    return {
        key: {str(extract(ex, e)[1]) for e in matched if extract(ex, e)[0]}
        for key, (ex, _) in query.labels.items()
    }


# Labels whose values are names the service chooses (a rule's name, a failure's kind) rather than
# a closed set its description can list.
OPEN_LABELS = {("rt-mp-rule-evaluations", "rule"), ("rt-mp-notifications", "rule")}
OPEN_LABELS |= {("rt-mp-failed-attempts", "kind")}


def errors_and_subclasses() -> list[type]:
    found, todo = [], [errors.CollectorError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


# How the service spells each closed set, from its code.
SPELT = {
    "metric": {*METRICS_SERVED, "check"},
    "code": {c.code for c in errors_and_subclasses()},
    "state": {decide.OK, decide.ALERTING, decide.NO_DATA, decide.ERROR},
    "severity": set(RULE_SEVERITIES),
    "kind": set(KIND_ICONS),
}


def described_values(description: str) -> set[str]:
    """The values a label description lists: `a, b or c`, before any explanation in brackets."""
    head = description.split("(")[0]
    return {v.strip() for v in re.split(r",| or ", head) if v.strip()}


def test_label_descriptions_list_the_values_the_service_emits_spelt_as_it_spells_them(
    entries,
) -> None:
    problems = []
    for where, data in ops_files().items():
        if "metrics/" not in where:
            continue
        name = Path(where).stem
        seen = _label_values(METRICS[name], entries)
        for label in data["metricDescriptor"].get("labels", []):
            key = label["key"]
            if (name, key) in OPEN_LABELS:
                continue
            listed = described_values(label["description"])
            if seen.get(key, set()) - listed:
                problems.append(f"{name}: {key} emitted {sorted(seen[key] - listed)}, not listed")
            if key in SPELT and listed - SPELT[key]:
                problems.append(f"{name}: {key} lists {sorted(listed - SPELT[key])}, never emitted")
            # A value spelt another way anywhere in it (the path `distinct-users` for the metric).
            for word in re.findall(r"\b[a-z]+(?:-[a-z]+)+\b", label["description"]):
                if word.replace("-", "_") in SPELT.get(key, set()):
                    problems.append(f"{name}: {key} names {word!r}, emitted with underscores")
    assert problems == []


def test_every_log_based_metric_is_on_a_dashboard_chart() -> None:
    tiles = json.loads((OPS / "dashboard.json").read_text())["mosaicLayout"]["tiles"]
    charts = " ".join(strings([t["widget"] for t in tiles if "xyChart" in t["widget"]]))
    charted = set(re.findall(r"logging\.googleapis\.com/user/([\w-]+)", charts))
    assert sorted(set(METRICS) - charted) == []


def test_the_dashboard_tiles_fit_its_columns_and_do_not_overlap() -> None:
    layout = json.loads((OPS / "dashboard.json").read_text())["mosaicLayout"]
    cells: dict[tuple[int, int], str] = {}
    for tile in layout["tiles"]:
        x, y = tile.get("xPos", 0), tile.get("yPos", 0)
        assert x + tile["width"] <= layout["columns"], tile["widget"]["title"]
        for cell in (
            (i, j) for i in range(x, x + tile["width"]) for j in range(y, y + tile["height"])
        ):
            assert cell not in cells, (tile["widget"]["title"], cells.get(cell))
            cells[cell] = tile["widget"]["title"]


# -- the checker must catch a broken file ---------------------------------------------------------


def broken(name: str, old: str, new: str) -> LogQuery:
    text = (OPS / "metrics" / f"{name}.yaml").read_text()
    assert old in text
    return metric_query(f"broken {name}", yaml.safe_load(text.replace(old, new)))


def test_a_renamed_value_field_is_rejected(entries) -> None:
    query = broken(
        "rt-mp-export-seconds",
        "EXTRACT(jsonPayload.export.seconds)",
        "EXTRACT(jsonPayload.export.secs)",
    )
    problems = check(query, entries)
    assert len(problems) == 1
    assert "value EXTRACT(jsonPayload.export.secs) is missing in a matching entry" in problems[0]


def test_a_renamed_filter_field_is_rejected(entries) -> None:
    query = broken(
        "rt-mp-partial-runs", "jsonPayload.complete=false", "jsonPayload.completed=false"
    )
    assert check(query, entries) == [
        f"broken rt-mp-partial-runs: the filter matches none of the {len(entries)} entries"
    ]


def test_a_field_compared_with_the_wrong_type_is_rejected(entries) -> None:
    query = broken(
        "rt-mp-partial-runs", "jsonPayload.complete=false", 'jsonPayload.complete="false"'
    )
    problems = check(query, entries)
    assert "jsonPayload.complete is compared as a string but emitted as bool" in problems[0]


def test_a_label_of_the_wrong_type_is_rejected(entries) -> None:
    query = broken(
        "rt-mp-failed-requests",
        "code: EXTRACT(jsonPayload.code)",
        "code: EXTRACT(jsonPayload.export)",
    )
    problems = check(query, entries)
    assert len(problems) == 1
    assert "label code EXTRACT(jsonPayload.export) is dict" in problems[0]


def test_a_branch_that_never_matches_is_rejected(entries) -> None:
    query = LogQuery(
        "or-branch",
        "jsonPayload.summary=true AND (jsonPayload.complete=false OR jsonPayload.partial=true)",
    )
    assert check(query, entries) == [
        "or-branch: jsonPayload.partial is never present in matching entries"
    ]


# -- the script that applies it all ---------------------------------------------------------------


def test_apply_script_runs_one_command_per_file_with_the_service_name(tmp_path: Path) -> None:
    log = tmp_path / "gcloud.log"
    fake = tmp_path / "gcloud"
    # Existing: one metric and one policy (updated); everything else is new (created).
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'echo "$*" >> "$GCLOUD_LOG"\n'
        'for a in "$@"; do case "$a" in\n'
        '  --*-from-file=*) cat "${a#*=}" >> "$GCLOUD_LOG.files";;\n'
        "esac; done\n"
        'case "$*" in\n'
        '  "logging metrics describe rt-mp-requests "*) exit 0;;\n'
        '  "logging metrics describe "*) exit 1;;\n'
        '  "monitoring dashboards describe "*) exit 1;;\n'
        '  "alpha monitoring policies list "*partial*) echo projects/p/alertPolicies/7;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "GCLOUD_LOG": str(log),
        "PROJECT_ID": "p",
        "SERVICE": "my-collector",
    }

    subprocess.run(
        ["bash", str(OPS / "apply.sh")], env=env, check=True, timeout=60, capture_output=True
    )

    writes = [
        line.split(" --")[0]
        for line in log.read_text().splitlines()
        if " describe " not in line and " list " not in line
    ]
    assert sorted(writes) == sorted(
        [f"logging metrics create {n}" for n in METRICS if n != "rt-mp-requests"]
        + [
            "logging metrics update rt-mp-requests",
            "monitoring dashboards create",
            "alpha monitoring policies create",
            "alpha monitoring policies create",
            "alpha monitoring policies create",
            "alpha monitoring policies update projects/p/alertPolicies/7",
        ]
    )
    applied = (tmp_path / "gcloud.log.files").read_text()
    assert 'service_name="my-collector"' in applied
    assert "rt-mp-collector" not in applied
