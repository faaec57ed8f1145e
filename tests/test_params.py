"""What a request may say, held the same way in a query string and a JSON body: duplicates,
flags, event names that cannot be names and names that match nothing, and parameters on the
endpoints that take none. The simulator behind the real reader; every refusal spends no query."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collector.app import create_app
from collector.metrics.name_hint import SAMPLE_NAMES, NamesSeen
from collector.simulator import Simulator
from collector.suggest import closest
from tests.helpers import make_settings

WINDOW = "from=2026-11-23T10:00:00Z&to=2026-11-23T11:00:00Z"


@pytest.fixture(scope="module")
def http(sim: Simulator) -> Any:
    return create_app(make_settings(sim.url)).test_client()


def refused(sim: Simulator, send: Any) -> dict[str, Any]:
    """The 400 answer of `send()`, which must spend no Export query."""
    before = sim.queries
    r = send()
    assert r.status_code == 400, r.get_data(as_text=True)
    assert sim.queries == before
    body = r.get_json()
    assert body["code"] == "bad_request"
    return body


@pytest.mark.parametrize(
    ("path", "data", "key"),
    [
        ("/events", '{"minutes": 5, "minutes": 60}', "minutes"),
        ("/distinct-users", '{"event": "Sign Up", "minutes": 5, "event": "Purchase"}', "event"),
        ("/active-users", '{"date": "2026-11-22", "date": "2026-11-21"}', "date"),
        ("/check", '{"dry_run": true, "dry_run": false}', "dry_run"),
    ],
)
def test_a_json_body_with_a_duplicate_key_is_a_400_naming_the_key(
    sim: Simulator, http: Any, path: str, data: str, key: str
) -> None:
    # Before, the last one silently won, where the same key twice in a query string is a 400.
    if path == "/check":
        http = create_app(make_settings(sim.url)).test_client()  # refused before "no rules"
    body = refused(sim, lambda: http.post(path, data=data, content_type="application/json"))
    assert body["error"] == (
        f"key {key!r} is given more than once in the JSON body: give each parameter once "
        '(several values as a list: {"event": ["Sign Up", "Purchase"]})'
    )


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_json_body_with_nan_or_infinity_is_a_400(
    sim: Simulator, http: Any, constant: str
) -> None:
    # Python's parser takes them (and `{"event": NaN}` asked for an event named 'nan').
    data = '{"event": ' + constant + ', "minutes": 60}'
    body = refused(sim, lambda: http.post("/events", data=data, content_type="application/json"))
    assert body["error"] == (
        f"the JSON body holds {constant}, which JSON does not allow: give a number"
    )


def test_the_same_key_twice_in_a_query_string_is_refused_too(sim: Simulator, http: Any) -> None:
    body = refused(sim, lambda: http.get("/events?minutes=5&minutes=60"))
    assert body["error"] == "parameter 'minutes' is given more than once"


@pytest.mark.parametrize(
    ("query", "shown", "char"),
    [
        ("event=%00bad", "'\\x00bad'", "U+0000"),
        ("event=Sign%0AUp", "'Sign\\nUp'", "U+000A"),
        ("event=Sign%09Up", "'Sign\\tUp'", "U+0009"),
        ("event=x%7F", "'x\\x7f'", "U+007F"),
        ("event=Sign%C2%85Up", "'Sign\\x85Up'", "U+0085"),
    ],
)
def test_an_event_name_with_a_control_character_is_a_400(
    sim: Simulator, http: Any, query: str, shown: str, char: str
) -> None:
    # Before, /events?event=%00bad answered 200 with 0 where the README promises a 400.
    body = refused(sim, lambda: http.get(f"/events?{WINDOW}&{query}"))
    assert body["error"] == (
        f"event name {shown} holds a control character ({char}): event names are printable "
        "text, as Mixpanel shows them"
    )


def test_a_control_character_in_a_json_body_event_name_is_refused_too(
    sim: Simulator, http: Any
) -> None:
    body = refused(sim, lambda: http.post("/distinct-users", json={"event": ["ok", "\x00bad"]}))
    assert "control character (U+0000)" in body["error"]


def test_a_name_that_matches_nothing_answers_0_with_a_hint(sim: Simulator, http: Any) -> None:
    # Before: 200 with 0 and no word on why.
    before = sim.queries
    body = http.get(f"/events?{WINDOW}&event=sign%20up").get_json()
    assert sim.queries == before + 1
    assert body["value"] == 0 and body["by_event"] == {} and body["complete"] is True
    assert body["hint"] == (
        "no event named 'sign up' was read in the window: event names are exact and "
        "case-sensitive; /events without event= lists the window's names in by_event"
    )


def test_the_hint_names_only_the_names_that_matched_nothing(sim: Simulator, http: Any) -> None:
    body = http.get(f"/events?{WINDOW}&event=Sign%20Up&event=Purchse&event=page%20view").get_json()
    assert body["by_event"]["Sign Up"] > 0 and set(body["by_event"]) == {"Sign Up"}
    assert body["hint"].startswith(
        "no event named 'Purchse' or 'page view' was read in the window: event names are exact"
    )


def test_a_user_metric_whose_names_match_nothing_has_the_hint_too(
    sim: Simulator, http: Any
) -> None:
    body = http.get(f"/distinct-users?{WINDOW}&event=Signup&event=Sign%20Up").get_json()
    assert body["value"] > 0
    assert body["hint"].startswith(
        "no event named 'Signup' (did you mean 'Sign Up'?) was read in the window: event names"
    )


def test_names_that_all_match_have_no_hint(sim: Simulator, http: Any) -> None:
    for path in ("/events", "/distinct-users"):
        body = http.get(f"{path}?{WINDOW}&event=Sign%20Up&event=Purchase").get_json()
        assert body["value"] > 0 and "hint" not in body
    assert "hint" not in http.get(f"/events?{WINDOW}").get_json()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"minutes": True}, "parameter 'minutes' takes a string or a number, not true"),
        ({"event": [False]}, "parameter 'event' takes a string or a number, not false"),
        ({"minutes": None}, "parameter 'minutes' takes a string or a number, not null"),
    ],
)
def test_a_boolean_where_no_flag_is_is_refused_with_what_is_accepted(
    sim: Simulator, http: Any, body: dict, says: str
) -> None:
    answer = refused(sim, lambda: http.post("/events", json=body))
    assert answer["error"].startswith(says)
    assert answer["error"].endswith("(true and false are for dry_run)")


@pytest.mark.parametrize(
    ("path", "query"),
    [("/healthz", "verbose=1"), ("/healthz", "minutes=5"), ("/rules", "format=html")],
)
def test_endpoints_without_parameters_refuse_unknown_ones(
    sim: Simulator, http: Any, path: str, query: str
) -> None:
    # Before, they answered 200 (or /rules's 503) as if nothing had been asked.
    body = refused(sim, lambda: http.get(f"{path}?{query}"))
    name = query.split("=")[0]
    assert body["error"] == f"unknown parameter(s): {name!r}; {path} takes no parameters"


def test_on_the_ledger_path_the_hint_suggests_the_closest_name_kept(
    sim: Simulator, tmp_path: Path
) -> None:
    # The ledger keeps every name of its slices, so it knows what `sign up` was meant to be.
    http = create_app(make_settings(sim.url, LEDGER_STORE=str(tmp_path))).test_client()
    body = http.get("/events?minutes=60&event=sign%20up").get_json()
    assert body["ledger"]["slices_read_now"] > 0 and body["complete"] is True
    assert body["value"] == 0 and body["by_event"] == {}
    assert body["hint"] == (
        "no event named 'sign up' (did you mean 'Sign Up'?) was read in the window: event "
        "names are exact and case-sensitive; /events without event= lists the window's names "
        "in by_event"
    )
    body = http.get("/distinct-users?minutes=60&event=Purchse&event=Search").get_json()
    assert body["ledger"]["slices_from_ledger"] > 0 and body["value"] > 0
    assert body["hint"].startswith("no event named 'Purchse' (did you mean 'Purchase'?) was read")
    body = http.get("/events?minutes=60&event=Purchase").get_json()
    assert body["value"] > 0 and "hint" not in body


def test_the_hint_spells_out_five_names_and_suggests_only_what_is_close() -> None:
    seen = NamesSeen([f"e{i}" for i in range(7)] + ["sign_up", "Purchse", "Zzz"])
    seen.see(["Sign Up", "Purchase", "Page View"] * 3)
    assert seen.hint() == (
        "no event named 'e0', 'e1', 'e2', 'e3', 'e4' or 5 more was read in the window: event "
        "names are exact and case-sensitive; /events without event= lists the window's names "
        "in by_event"
    )
    assert closest("sign_up", seen.sample) == "Sign Up"  # case and separators
    assert closest("SIGNUP", seen.sample) == "Sign Up"
    assert closest("Purchse", seen.sample) == "Purchase"  # a near spelling
    assert closest("Zzz", seen.sample) is None and closest("x", set()) is None


def test_names_kept_to_suggest_from_are_bounded() -> None:
    seen = NamesSeen(["Sign Up"])
    seen.see([f"Custom Event {i}" for i in range(SAMPLE_NAMES + 500)])
    seen.see(["Sign Up"])  # past the bound, an asked name is still found
    assert len(seen.sample) == SAMPLE_NAMES and seen.hint() is None
