"""Hostile input on every endpoint: a clear 4xx before any Export query, never a 500 or a leak.

The app runs with a reader that only counts its calls, so "no query was spent" is exact. Answers
may be 200 (the input was valid), 4xx (refused, with a message, and nothing spent), or the 503 of
`/check` without rules; never a 500, never a traceback or a source path in a body, and never a
request whose summary entry the log could not write.
"""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.app import MAX_BODY_BYTES, create_app
from collector.simulator import Simulator
from tests.helpers import CountingReader, gunicorn, make_settings, service_env

NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
INTERNALS = re.compile(r'Traceback|File "|site-packages|collector/|\w\.py\b')
ALLOWED = {200, 400, 404, 405, 413, 502, 503}


@pytest.fixture(scope="module")
def service() -> tuple[Any, CountingReader]:
    settings = make_settings()
    reader = CountingReader(settings)
    app = create_app(settings, reader=reader, now=lambda: NOW)
    return app.test_client(), reader


def endpoints() -> list[str]:
    settings = make_settings()
    app = create_app(settings, reader=CountingReader(settings))
    return sorted({r.rule for r in app.url_map.iter_rules() if r.endpoint != "static"})


ENDPOINTS = endpoints()


def call(client: Any, reader: CountingReader, method: str, path: str, **kwargs: Any):
    before = reader.calls
    response = client.open(path, method=method, **kwargs)
    return response, reader.calls - before


def assert_honest(response: Any, spent: int, method: str = "GET") -> dict[str, Any]:
    status = response.status_code
    text = response.get_data(as_text=True)
    assert status in ALLOWED, (status, text[:500])
    assert not INTERNALS.search(text), text[:500]
    if method == "HEAD":
        return {}
    if response.mimetype == "text/html":  # /status answers a browser, its errors too
        assert "<h1>Rule status" in text, text[:500]
        assert status in {200, 400, 503} and (status < 400 or "<code>" in text), text[:500]
        assert spent == 0
        return {}
    body = json.loads(text)
    assert isinstance(body, dict)
    if 400 <= status < 500:
        assert spent == 0, f"an Export query was spent on a refused request: {text[:300]}"
        assert body["error"] and body["code"], body
    return body


# -- targeted: each refused before any query --------------------------------------------------

DEEP = "[" * 30_000 + "]" * 30_000  # inside MAX_BODY_BYTES, past the parser's recursion limit
WINDOW = {"from": "2026-11-22T10:00:00Z", "to": "2026-11-22T11:00:00Z"}


def _json(value: Any) -> dict[str, Any]:
    return {"data": value if isinstance(value, str | bytes) else json.dumps(value)}


REFUSED = [
    ("oversized body", "POST", "/events", _json({"minutes": 5, "x": "a" * MAX_BODY_BYTES}), 413),
    ("8-day window", "GET", "/events?from=2026-11-10T00:00:00Z&to=2026-11-18T00:00:00Z", {}, 400),
    ("huge minutes", "GET", "/distinct-users?minutes=" + "9" * 40, {}, 400),
    ("minutes as float", "GET", "/distinct-users?minutes=1e9", {}, 400),
    (
        "101 events",
        "GET",
        "/events?" + urlencode([("event", f"e{i}") for i in range(101)]),
        {},
        400,
    ),
    ("3000 events", "POST", "/events", _json({**WINDOW, "event": ["e"] * 3000}), 400),
    ("event too long", "GET", "/events?" + urlencode({**WINDOW, "event": "x" * 256}), {}, 400),
    ("lone surrogate", "POST", "/events", _json('{"minutes": 5, "event": "\\ud800"}'), 400),
    ("non-UTF-8 body", "POST", "/events", _json(b'{"minutes": "\xff\xfe"}'), 400),
    ("nested JSON", "POST", "/distinct-users", _json(DEEP), 400),
    ("nested objects", "POST", "/events", _json('{"a":' * 6000 + "1" + "}" * 6000), 400),
    ("JSON list", "POST", "/events", _json([1, 2]), 400),
    ("JSON string", "POST", "/events", _json('"minutes"'), 400),
    ("JSON number", "POST", "/active-users", _json("7"), 400),
    ("JSON null", "POST", "/events", _json("null"), 400),
    ("nested value", "POST", "/events", _json({"minutes": {"a": 1}}), 400),
    ("NaN", "POST", "/events", _json('{"minutes": NaN}'), 400),
    ("Infinity", "POST", "/events", _json('{"from": Infinity, "to": -Infinity}'), 400),
    ("int past the limit", "POST", "/events", _json('{"minutes": ' + "9" * 5000 + "}"), 400),
    ("float overflow", "POST", "/events", _json('{"from": 1e400, "to": 1e401}'), 400),
    ("huge epoch", "GET", "/events?from=1e18&to=2e18", {}, 400),
    ("offset overflow", "GET", "/events?from=9999-12-31T23:00:00-23:00&to=1", {}, 400),
    (
        "year one",
        "GET",
        "/events?" + urlencode({"from": "0001-01-01T00:00:00+01:00", "to": 0}),
        {},
        400,
    ),
    ("before 1970", "GET", "/events?from=-7200&to=-3600", {}, 400),
    ("date before 1970", "GET", "/active-users?date=0001-01-01", {}, 400),
    ("date in 9999", "GET", "/active-users?date=9999-12-31", {}, 400),
    ("text body", "POST", "/events", {"data": "minutes=5", "content_type": "text/plain"}, 400),
    ("both places", "POST", "/events?minutes=5", _json({"minutes": 6}), 400),
    ("unknown parameter", "GET", "/events?" + "x" * 5000 + "=1", {}, 400),
    ("boolean", "POST", "/events", _json({"minutes": True}), 400),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [r[1:] for r in REFUSED],
    ids=[r[0] for r in REFUSED],
)
def test_hostile_input_is_refused_before_any_export_query(
    service, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    client, reader = service
    kwargs = dict(kwargs)
    if "data" in kwargs:
        kwargs.setdefault("content_type", "application/json")
    response, spent = call(client, reader, method, path, **kwargs)
    body = assert_honest(response, spent, method)
    assert response.status_code == status, body
    assert spent == 0


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/events", b"from=\xff\xfe&to=\xc3"),
        ("/distinct-users", b"minutes=\x80"),
        ("/active-users", b"date=2026-11-2\xff"),
        ("/check", b"rule=\xff"),
    ],
)
def test_non_utf8_bytes_in_the_query_string_are_refused(service, path: str, raw: bytes) -> None:
    client, reader = service
    # WSGI hands the raw query string over as latin-1 text: what a server would pass on.
    env = {"QUERY_STRING": raw.decode("latin-1")}
    response, spent = call(client, reader, "GET", path, environ_overrides=env)
    assert_honest(response, spent)
    assert response.status_code in (400, 503)  # 503: /check without rules


@pytest.mark.parametrize(
    "query",
    [
        b"event=Sign\xed\xa0\x80Up",  # raw bytes that are no UTF-8 (a surrogate's encoding)
        b"event=Sign%FFUp",  # a percent escape of a byte that is no UTF-8
        b"ev%FFent=x",  # in a parameter's name
    ],
)
def test_an_event_name_that_is_not_utf8_is_a_400_naming_the_parameter(
    service, query: bytes
) -> None:
    client, reader = service
    raw = b"from=2026-11-22T10:00:00Z&to=2026-11-22T11:00:00Z&" + query
    env = {"QUERY_STRING": raw.decode("latin-1")}
    response, spent = call(client, reader, "GET", "/events", environ_overrides=env)
    body = assert_honest(response, spent)
    assert response.status_code == 400 and spent == 0
    assert body["code"] == "bad_request" and "is not valid UTF-8" in body["error"]


# -- fuzzing: any query string, any body, any endpoint ----------------------------------------

KEYS = st.sampled_from(["from", "to", "minutes", "lag", "event", "date", "rule"]) | st.text(
    max_size=12
)
SPECIAL = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "-inf",
        "1e400",
        "-1e400",
        "1e18",
        "0",
        "-1",
        "99999999999999999999999",
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00:00+14:00",
        "2026-11-22",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+00:01",
        "\x00",
        "Z",
        "\uff11\uff12",  # fullwidth digits: int() and float() accept them
        "\ud800",
    ]
)
VALUES = st.one_of(
    SPECIAL,
    st.text(max_size=40),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | SPECIAL,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
JSON_BODIES = st.dictionaries(KEYS, JSON_VALUES, max_size=5) | JSON_VALUES
PATHS = st.sampled_from(ENDPOINTS) | st.text(max_size=20).map(lambda t: "/" + t)


def _query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(
        quote_from_bytes(k.encode("utf-8", "surrogatepass"))
        + "="
        + quote_from_bytes(v.encode("utf-8", "surrogatepass"))
        for k, v in pairs
    )


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    path=PATHS,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    pairs=st.lists(st.tuples(KEYS, VALUES), max_size=8),
)
def test_any_query_string_gets_an_honest_answer(service, capsys, path, method, pairs) -> None:
    client, reader = service
    env = {"QUERY_STRING": _query(pairs)}
    response, spent = call(client, reader, method, path, environ_overrides=env)
    assert_honest(response, spent, method)
    assert "Logging error" not in capsys.readouterr().err


@FUZZ
@given(
    path=st.sampled_from(ENDPOINTS),
    body=JSON_BODIES,
    nan=st.booleans(),
)
def test_any_json_body_gets_an_honest_answer(service, capsys, path, body, nan) -> None:
    client, reader = service
    data = json.dumps(body, allow_nan=nan) if nan else json.dumps(body, default=str)
    response, spent = call(client, reader, "POST", path, data=data, content_type="application/json")
    assert_honest(response, spent, "POST")
    assert "Logging error" not in capsys.readouterr().err


@FUZZ
@given(
    path=st.sampled_from(ENDPOINTS),
    data=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", None]),
)
def test_any_bytes_as_a_body_get_an_honest_answer(service, capsys, path, data, content_type):
    client, reader = service
    response, spent = call(client, reader, "POST", path, data=data, content_type=content_type)
    assert_honest(response, spent, "POST")
    assert "Logging error" not in capsys.readouterr().err


# -- the same through gunicorn's own HTTP parser ----------------------------------------------


def raw_request(base: str, payload: bytes) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def test_gunicorn_refuses_raw_hostile_requests_without_internals(
    sim: Simulator, tmp_path: Path
) -> None:
    chunked_body = b'{"minutes": ' + b"9" * 200_000 + b"}"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (chunked_body[i : i + 8192] for i in range(0, len(chunked_body), 8192))
    )
    requests_ = {
        "non-UTF-8 request line": b"GET /events?from=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        "control bytes": b"GET /events?minutes=\x01\x02 HTTP/1.1\r\nHost: x\r\n\r\n",
        "NUL in the path": b"GET /ev\x00ents HTTP/1.1\r\nHost: x\r\n\r\n",
        "oversized chunked body": b"POST /events HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n",
        "huge header": b"GET /events HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20_000 + b"\r\n\r\n",
    }
    before = sim.queries
    with gunicorn(service_env(sim), tmp_path / "gunicorn.log", workers=1, threads=2) as svc:
        for name, payload in requests_.items():
            status, data = raw_request(svc.base, payload)
            assert 400 <= status < 500, (name, data[:300])
            assert not INTERNALS.search(data.decode("latin-1")), (name, data[:500])
        small = b'{"minutes": 30, "lag": 10}'
        status, data = raw_request(
            svc.base,
            b"POST /distinct-users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + b"%x\r\n%s\r\n0\r\n\r\n"
            % (len(small), small),
        )
        log = svc.log_text()
    # A chunked body is read like any other: the window is the one it asks for.
    assert status == 200, data[:300]
    window = json.loads(data.split(b"\r\n\r\n", 1)[1])["window"]
    span = datetime.fromisoformat(window["to"]) - datetime.fromisoformat(window["from"])
    assert span.total_seconds() == 30 * 60
    assert sim.queries == before + 1
    assert "Traceback" not in log
    assert log.count("Booting worker") == 1
