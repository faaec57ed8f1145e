"""Many windows answered by the ledger at once (a `/check`): what any of them lacks is read first,
in one query where it can (`LedgerService.prefetch`), then each window is answered from the
ledger and that read; a window read by an earlier ask (or run) costs nothing, so baselines a day
or a week back are cheap. Every read shares one deadline: the run reads for
EXPORT_DEADLINE_SECONDS at most. If the read fails, nothing more is read that run: each window
answers from what is kept, or with the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from collector.errors import CollectorError
from collector.metrics.answer import Answers, Ask, MetricAnswer
from collector.metrics.answering import query_groups
from collector.window import Window

if TYPE_CHECKING:
    from collector.ledger.service import LedgerService, Memo


def answer_all(ledger: LedgerService, asks: Sequence[Ask], max_days: int) -> Answers:
    """Every ask's windows from the ledger and one prefetch; see the module. The asks are
    taken in the order, and numbered by the groups, that the export would read them in
    (`query_groups`), as the `/check` figures have always listed them."""
    groups = query_groups(asks, max_days)
    asks = [ask for group in groups for ask in group.asks]
    requests = [r for ask in asks for r in ask.requests]
    if not requests:
        return Answers({}, [], 0)
    deadline = ledger.reader.deadline()
    memo: Memo = {}
    answers = Answers({}, [], 0)
    answers.query_of = {ask.label: k for k, group in enumerate(groups) for ask in group.asks}
    refused: CollectorError | None = None
    unread = None  # the run's read failed: the windows answer from what is kept, no more reads
    try:
        read, unread = ledger.prefetch(requests, memo, deadline)
    except CollectorError as exc:  # refused: no window can be answered
        refused, read = exc, {"queries": (exc.export or {}).get("attempts", 0)}
    span = Window(min(r.window.start for r in requests), max(r.window.end for r in requests))
    answers.exports.append({"window": span.as_dict(), "rules": [a.label for a in asks], **read})
    for ask in asks:
        if refused is not None:
            answers.by_label[ask.label] = refused
            continue
        found: list[MetricAnswer] = []
        for request in ask.requests:
            try:
                answer = ledger.compute(request, memo, deadline, unread)
            except CollectorError as exc:
                answers.by_label[ask.label] = exc
                answers.exports.append(
                    {
                        "window": request.window.as_dict(),
                        "rules": [ask.label],
                        "complete": False,
                        "error": exc.message,
                        "code": exc.code,
                        # The run's failed read is counted once, with the read.
                        "queries": 0 if exc is unread else (exc.export or {}).get("attempts", 0),
                    }
                )
                break
            found.append(answer)
            answers.exports.append(_figures(ask, answer))
        else:
            answers.by_label[ask.label] = found
    answers.queries = sum(e.get("queries", 1) for e in answers.exports)
    return answers


def _figures(ask: Ask, answer: MetricAnswer) -> dict[str, Any]:
    assert answer.ledger is not None, "a ledger answer has ledger figures"
    return {
        "window": answer.request.window.as_dict(),
        "rules": [ask.label],
        "complete": answer.complete,
        "queries": answer.ledger.queries,
        **answer.export,
        "ledger": answer.ledger.as_dict(),
    }
