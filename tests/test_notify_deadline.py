"""A notification's send has a total timeout, and a 2xx status is delivery.

Against the loopback receiver: an answer trickled a byte at a time passes every read timeout,
so only a total one bounds it; a receiver that never answers; a 2xx whose body is slow, which
is delivered already; SIGTERM's drain, which cuts a send in flight within its grace. The bounds
asserted are generous: they tell a total timeout (about a second) from a per-read one (minutes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from collector.alerting.notification import NotifierConfig
from collector.alerting.notify import SlackNotifier, WebhookNotifier
from collector.config import Secret
from collector.errors import NotifyError
from collector.shutdown import drain, reset_drain
from tests.test_notify import N
from tests.webhook_receiver import Reply, WebhookReceiver


@pytest.fixture
def rx() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture(autouse=True)
def _no_drain_left_over() -> Iterator[None]:
    reset_drain()
    yield
    reset_drain()


def hook(rx: WebhookReceiver, timeout: float) -> WebhookNotifier:
    config = NotifierConfig("ops", "webhook", Secret(rx.url + "/h"), Secret("key"))
    return WebhookNotifier(config, timeout=timeout)


def timed_send(notifier: WebhookNotifier | SlackNotifier, **kwargs: float) -> tuple[str, float]:
    started = time.monotonic()
    try:
        notifier.send(N, **kwargs)
        outcome = "delivered"
    except NotifyError as exc:
        outcome = str(exc)
    return outcome, time.monotonic() - started


@pytest.mark.timing
@pytest.mark.parametrize(
    "reply",
    [Reply(200, body="ok" * 50, trickle=0.1), Reply(hang=True)],
    ids=["trickling", "hanging"],
)
def test_a_receiver_that_does_not_answer_in_time_costs_the_timeout_not_more(
    rx: WebhookReceiver, reply: Reply
) -> None:
    rx.script([reply])
    outcome, seconds = timed_send(hook(rx, timeout=0.6))
    assert outcome == "webhook notifier 'ops': no answer within 0.6s (timeout)"
    assert seconds < 0.6 + 1.5
    assert len(rx.received) == 1


def test_the_caller_can_shorten_the_timeout_but_not_lengthen_it(rx: WebhookReceiver) -> None:
    rx.script([Reply(hang=True), Reply(hang=True)])
    assert timed_send(hook(rx, timeout=30), timeout=0.4)[0].endswith("within 0.4s (timeout)")
    assert timed_send(hook(rx, timeout=0.4), timeout=30)[0].endswith("within 0.4s (timeout)")


@pytest.mark.timing
def test_a_2xx_status_is_delivery_without_waiting_for_the_body(rx: WebhookReceiver) -> None:
    rx.script([Reply(200, body="x" * 200, slow_body=0.2)])  # 40 s of body
    outcome, seconds = timed_send(hook(rx, timeout=10))
    assert outcome == "delivered"
    assert seconds < 3


@pytest.mark.timing
def test_an_error_status_with_a_slow_body_fails_within_the_timeout(rx: WebhookReceiver) -> None:
    rx.script([Reply(500, body="y" * 200, slow_body=0.2)])
    outcome, seconds = timed_send(hook(rx, timeout=0.8))
    assert outcome.startswith("webhook notifier 'ops': HTTP 500")
    assert seconds < 0.8 + 1.5


@pytest.mark.timing
def test_sigterm_cuts_a_send_in_flight_within_the_drain(rx: WebhookReceiver) -> None:
    rx.script([Reply(hang=True)])
    threading.Timer(0.3, drain, args=(0.3,)).start()
    outcome, seconds = timed_send(hook(rx, timeout=30))
    assert outcome.startswith("webhook notifier 'ops': cut short after ")
    assert outcome.endswith("s: the instance is shutting down")
    assert seconds < 0.6 + 1.5


def test_slack_does_not_wait_out_a_retry_after_longer_than_its_time_left(
    rx: WebhookReceiver,
) -> None:
    rx.script([Reply(429, headers={"Retry-After": "3"})])
    slept: list[float] = []
    config = NotifierConfig("slack", "slack", Secret(rx.url + "/s"))
    slack = SlackNotifier(config, sleep=slept.append, timeout=10)
    outcome, _ = timed_send(slack, timeout=2)
    assert outcome.startswith("slack notifier 'slack': HTTP 429 rate limited, Retry-After 3s ")
    assert slept == []
    assert len(rx.received) == 1
