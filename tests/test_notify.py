"""Notifiers against a real loopback receiver: payloads, Slack rate limits, signatures, secrecy."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Iterator
from dataclasses import replace

import pytest

from collector.alerting.notification import Notification, NotifierConfig, verify_signature
from collector.alerting.notify import SlackNotifier, WebhookNotifier, build_notifier
from collector.config import Secret
from collector.errors import NotifyError
from tests.webhook_receiver import Reply, WebhookReceiver

# Distinctive, so a leak is easy to find in any output.
SLACK_PATH = "/services/T0LEAKCHECK/B0LEAKCHECK/xoxSlackTokenQ81z"
HOOK_PATH = "/hooks/wh-path-Vq03Lm"
SIGNING_KEY = "whsec-Kp29fXq7Lr"
NOW = 1_795_000_000.0

N = Notification(
    id="signups-low:firing:2026-11-23T11:05:00Z:slack",
    notifier="slack",
    rule="signups-low",
    kind="firing",
    severity="critical",
    state="ALERTING",
    metric="signups",
    condition="below",
    threshold=50.0,
    value=12.0,
    complete=True,
    window_from="2026-11-23T10:00:00Z",
    window_to="2026-11-23T11:00:00Z",
    created_at="2026-11-23T11:05:00Z",
    logs_url="https://console.cloud.google.com/logs/query;query=rule%3D%22signups-low%22?project=p",
    detail="value 12 is below 50",
)


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def slack(rx: WebhookReceiver, **kwargs: object) -> tuple[SlackNotifier, list[float]]:
    slept: list[float] = []
    config = NotifierConfig("slack", "slack", Secret(rx.url + SLACK_PATH))
    notifier = SlackNotifier(config, sleep=slept.append, **kwargs)  # type: ignore[arg-type]
    return notifier, slept


def webhook(url: str, key: str = SIGNING_KEY, **kwargs: object) -> WebhookNotifier:
    config = NotifierConfig("ops-hook", "webhook", Secret(url + HOOK_PATH), Secret(key))
    return WebhookNotifier(config, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def block_text(payload: dict) -> str:
    return json.dumps(payload["blocks"], ensure_ascii=False)


# -- Notification ---------------------------------------------------------------------------


def test_notification_round_trips_through_a_dict_and_json() -> None:
    assert Notification.from_dict(N.as_dict()) == N
    assert Notification.from_dict(json.loads(json.dumps(N.as_dict()))) == N
    no_value = replace(N, value=None, state="ERROR", logs_url=None, detail="")
    assert Notification.from_dict(json.loads(json.dumps(no_value.as_dict()))) == no_value


def test_notification_from_dict_ignores_unknown_keys_and_names_missing_ones() -> None:
    assert Notification.from_dict({**N.as_dict(), "added_later": 1}) == N
    d = N.as_dict()
    del d["rule"], d["threshold"]
    with pytest.raises(ValueError, match="missing rule, threshold"):
        Notification.from_dict(d)


# -- Slack ----------------------------------------------------------------------------------


def test_slack_message_has_blocks_and_a_text_fallback_with_the_essentials(
    rx: WebhookReceiver,
) -> None:
    notifier, _ = slack(rx)
    notifier.send(N)

    [got] = rx.received
    assert got["path"] == SLACK_PATH
    assert got["headers"]["content-type"] == "application/json"
    payload = got["body"]
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🔴 FIRING: signups-low"},
    }
    assert payload["blocks"][1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "value 12 is below 50"},
    }
    assert [f["text"] for f in payload["blocks"][2]["fields"]] == [
        "*Severity:*\ncritical",
        "*State:*\nALERTING",
        "*Metric:*\nsignups",
        "*Value:*\n12",
        "*Threshold:*\nbelow 50",
        "*Data:*\ncomplete",
        "*Window (UTC):*\n2026-11-23T10:00:00Z → 2026-11-23T11:00:00Z",
    ]
    assert payload["text"] == (
        "[FIRING] signups-low (critical, ALERTING): signups 12, threshold below 50; "
        "window 2026-11-23T10:00:00Z → 2026-11-23T11:00:00Z; data complete. "
        "value 12 is below 50 Logs: <" + N.logs_url + "|View logs>"
    )


def test_slack_shows_a_partial_value_as_a_lower_bound(rx: WebhookReceiver) -> None:
    notifier, _ = slack(rx)
    notifier.send(replace(N, complete=False, value=1234.0))

    payload = rx.received[0]["body"]
    fields = [f["text"] for f in payload["blocks"][2]["fields"]]
    assert "*Value:*\n1,234 (lower bound (partial export))" in fields
    assert "*Data:*\nlower bound (partial export)" in fields
    assert "signups 1,234 (lower bound (partial export))" in payload["text"]
    assert "data lower bound (partial export)" in payload["text"]


def test_slack_links_the_logs_only_when_there_is_a_logs_url(rx: WebhookReceiver) -> None:
    notifier, _ = slack(rx)
    notifier.send(N)
    notifier.send(replace(N, logs_url=None))

    with_link, without = (r["body"] for r in rx.received)
    assert with_link["blocks"][-1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": f"<{N.logs_url}|View logs> · Rule `signups-low` · notification `{N.id}`",
            }
        ],
    }
    assert "View logs" not in block_text(without)
    assert "Logs:" not in without["text"]


@pytest.mark.parametrize(
    ("kind", "header"),
    [
        ("reminder", "🔁 Reminder: signups-low"),
        ("resolved", "✅ Resolved: signups-low"),
        ("data_incomplete", "⚠️ Data incomplete: signups-low"),
    ],
)
def test_slack_header_names_the_kind(rx: WebhookReceiver, kind: str, header: str) -> None:
    notifier, _ = slack(rx)
    notifier.send(replace(N, kind=kind))
    assert rx.received[0]["body"]["blocks"][0]["text"]["text"] == header


def test_slack_escapes_markup_in_rule_text(rx: WebhookReceiver) -> None:
    notifier, _ = slack(rx)
    notifier.send(replace(N, detail="value <12> & falling", logs_url=None))
    payload = rx.received[0]["body"]
    assert payload["blocks"][1]["text"]["text"] == "value &lt;12&gt; &amp; falling"
    assert payload["text"].endswith("value &lt;12&gt; &amp; falling")


def test_slack_error_value_and_percent_conditions_read_plainly(rx: WebhookReceiver) -> None:
    notifier, _ = slack(rx)
    notifier.send(replace(N, value=None, state="ERROR", condition="drop_pct", threshold=20.5))
    fields = [f["text"] for f in rx.received[0]["body"]["blocks"][2]["fields"]]
    assert "*Value:*\nno value" in fields
    assert "*Threshold:*\ndrop of 20.5%" in fields


def test_slack_429_with_a_short_retry_after_waits_and_retries_once(rx: WebhookReceiver) -> None:
    rx.script([Reply(429, "rate_limited", {"Retry-After": "2"}), 200])
    notifier, slept = slack(rx)
    notifier.send(N)
    assert slept == [2.0]
    assert [r["status"] for r in rx.received] == [429, 200]
    assert rx.received[0]["raw"] == rx.received[1]["raw"]


def test_slack_429_with_a_long_retry_after_fails_without_waiting(rx: WebhookReceiver) -> None:
    rx.script([Reply(429, "rate_limited", {"Retry-After": "30"})])
    notifier, slept = slack(rx)
    with pytest.raises(NotifyError) as caught:
        notifier.send(N)
    assert slept == []
    assert len(rx.received) == 1
    assert str(caught.value) == (
        "slack notifier 'slack': HTTP 429 rate limited, Retry-After 30s exceeds the 5s this run "
        "waits"
    )
    assert (caught.value.status, caught.value.retry_after) == (429, 30.0)


def test_slack_429_twice_gives_up_after_the_one_retry(rx: WebhookReceiver) -> None:
    rx.script([Reply(429, headers={"Retry-After": "1"}), Reply(429, headers={"Retry-After": "1"})])
    notifier, slept = slack(rx)
    with pytest.raises(NotifyError, match="rate limited again after waiting 1s"):
        notifier.send(N)
    assert slept == [1.0]
    assert len(rx.received) == 2


def test_slack_429_without_retry_after_fails_without_waiting(rx: WebhookReceiver) -> None:
    rx.script([429])
    notifier, slept = slack(rx)
    with pytest.raises(NotifyError, match="Retry-After none given"):
        notifier.send(N)
    assert slept == []


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, "invalid_payload", "slack notifier 'slack': HTTP 400 invalid_payload"),
        (404, "no_team", "slack notifier 'slack': HTTP 404 no_team"),
        (410, "channel_is_archived", "slack notifier 'slack': HTTP 410 channel_is_archived"),
        (500, "", "slack notifier 'slack': HTTP 500"),
    ],
)
def test_slack_error_statuses_raise_with_status_and_slack_error(
    rx: WebhookReceiver, status: int, body: str, message: str
) -> None:
    rx.script([Reply(status, body)])
    notifier, slept = slack(rx)
    with pytest.raises(NotifyError) as caught:
        notifier.send(N)
    assert str(caught.value) == message
    assert caught.value.status == status
    assert slept == []
    assert len(rx.received) == 1


def test_unreachable_endpoint_raises_notify_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    config = NotifierConfig("slack", "slack", Secret(f"http://127.0.0.1:{port}{SLACK_PATH}"))
    with pytest.raises(NotifyError, match=r"could not connect \(ConnectionError\)"):
        SlackNotifier(config).send(N)


def test_a_slow_endpoint_raises_a_timeout(rx: WebhookReceiver) -> None:
    rx.script([Reply(200, delay=1.0)])
    notifier, _ = slack(rx, timeout=0.2)
    with pytest.raises(NotifyError, match=r"no answer within 0.2s \(timeout\)"):
        notifier.send(N)


# -- generic webhook ------------------------------------------------------------------------


def test_webhook_posts_the_notification_as_compact_signed_json() -> None:
    with WebhookReceiver(signing_key=SIGNING_KEY, clock=lambda: NOW) as rx:
        webhook(rx.url).send(N)

    [got] = rx.received
    assert got["path"] == HOOK_PATH
    assert got["raw"] == json.dumps(N.as_dict(), separators=(",", ":"), sort_keys=True).encode()
    assert Notification.from_dict(got["body"]) == N
    assert got["headers"]["x-collector-timestamp"] == "1795000000"
    assert got["headers"]["x-collector-notification-id"] == N.id
    assert got["signature_ok"] is True
    assert got["status"] == 200


def test_webhook_signature_verifies_only_with_the_key_fresh_and_untampered(
    rx: WebhookReceiver,
) -> None:
    webhook(rx.url).send(N)
    got = rx.received[0]
    raw, ts, sig = (
        got["raw"],
        got["headers"]["x-collector-timestamp"],
        got["headers"]["x-collector-signature"],
    )
    assert sig.startswith("sha256=") and len(sig) == len("sha256=") + 64

    assert verify_signature(raw, ts, sig, SIGNING_KEY, now=NOW)
    assert verify_signature(raw, ts, sig, SIGNING_KEY, now=NOW + 300)
    assert not verify_signature(raw, ts, sig, "another-key", now=NOW)
    assert not verify_signature(raw, ts, sig, SIGNING_KEY, now=NOW + 301)  # a replay
    assert not verify_signature(raw, ts, sig, SIGNING_KEY, now=NOW - 301)
    assert not verify_signature(raw.replace(b"12.0", b"99.0"), ts, sig, SIGNING_KEY, now=NOW)
    assert not verify_signature(raw, str(int(NOW) + 1), sig, SIGNING_KEY, now=NOW)
    assert not verify_signature(raw, "not-a-time", sig, SIGNING_KEY, now=NOW)
    assert not verify_signature(raw, ts, "sha256=é" + sig[8:], SIGNING_KEY, now=NOW)


def test_receiver_rejects_a_request_signed_with_another_key() -> None:
    with WebhookReceiver(statuses=[200], signing_key=SIGNING_KEY, clock=lambda: NOW) as rx:
        with pytest.raises(NotifyError, match="HTTP 401"):
            webhook(rx.url, key="not-the-receivers-key").send(N)
        webhook(rx.url).send(N)  # the scripted 200 was not used up by the rejected request
    assert [(r["signature_ok"], r["status"]) for r in rx.received] == [(False, 401), (True, 200)]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(500, "boom"), "webhook notifier 'ops-hook': HTTP 500 boom"),
        (Reply(404, ""), "webhook notifier 'ops-hook': HTTP 404"),
        (
            Reply(429, "slow down", {"Retry-After": "60"}),
            "webhook notifier 'ops-hook': HTTP 429 slow down (Retry-After 60s)",
        ),
    ],
)
def test_webhook_error_statuses_raise_with_the_status(
    rx: WebhookReceiver, reply: Reply, message: str
) -> None:
    rx.script([reply, 200])
    with pytest.raises(NotifyError) as caught:
        webhook(rx.url).send(N)
    assert str(caught.value) == message
    assert caught.value.status == reply.status
    assert len(rx.received) == 1  # no retry: the next run sends it again


# -- secrets --------------------------------------------------------------------------------


def _failures(rx: WebhookReceiver) -> list[NotifyError]:
    """One NotifyError from each way a send can fail, with servers that echo the secrets."""
    slack_echo = f"cannot POST {rx.url}{SLACK_PATH}"
    hook_echo = f"cannot POST {rx.url}{HOOK_PATH} key={SIGNING_KEY}"
    rx.script(
        [
            Reply(404, slack_echo),
            Reply(429, slack_echo, {"Retry-After": "30"}),
            Reply(500, hook_echo),
            Reply(429, hook_echo, {"Retry-After": "90"}),
            Reply(200, delay=1.0),
        ]
    )
    slack_notifier, _ = slack(rx)
    hook = webhook(rx.url)
    slow, _ = slack(rx, timeout=0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    dead = webhook(dead_url)
    errors = []
    for notifier in (slack_notifier, slack_notifier, hook, hook, slow, dead):
        try:
            notifier.send(N)
        except NotifyError as exc:
            errors.append(exc)
    return errors


def test_notify_errors_never_show_the_url_or_the_key(rx: WebhookReceiver) -> None:
    errors = _failures(rx)
    assert len(errors) == 6
    for exc in errors:
        shown = [
            str(exc),
            repr(exc),
            "".join(traceback.format_exception(exc)),
            json.dumps(vars(exc)),
        ]
        for text in shown:
            for secret in (SLACK_PATH, HOOK_PATH, SIGNING_KEY, "xoxSlackTokenQ81z", rx.url):
                assert secret not in text
        assert exc.__cause__ is None and exc.__context__ is None


def test_configs_and_notifiers_do_not_print_their_secrets(rx: WebhookReceiver) -> None:
    config = NotifierConfig("ops-hook", "webhook", Secret(rx.url + HOOK_PATH), Secret(SIGNING_KEY))
    shown = f"{config} {config!r} {build_notifier(config)!r}"
    assert HOOK_PATH not in shown and SIGNING_KEY not in shown
    assert "Secret('***')" in shown


# -- building -------------------------------------------------------------------------------


def test_build_notifier_picks_the_class_by_type() -> None:
    slack_config = NotifierConfig("a", "slack", Secret("https://hooks.example.test/x"))
    hook_config = NotifierConfig("b", "webhook", Secret("https://example.test/h"), Secret("k"))
    assert isinstance(build_notifier(slack_config, timeout=3), SlackNotifier)
    assert isinstance(build_notifier(hook_config), WebhookNotifier)
    assert build_notifier(hook_config).name == "b"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            NotifierConfig("b", "webhook", Secret("https://example.test/h")),
            "webhook notifier 'b' needs a signing key",
        ),
        (
            NotifierConfig("c", "email", Secret("https://example.test/h")),
            "notifier 'c' has unknown type 'email'",
        ),
        (
            NotifierConfig("d", "slack", Secret("ftp://example.test/secret-path")),
            "notifier 'd': the URL is not an http(s) URL",
        ),
    ],
)
def test_build_notifier_rejects_bad_configs(config: NotifierConfig, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        build_notifier(config)
    assert str(caught.value) == message
