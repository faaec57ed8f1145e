"""The demo's second part: an incident told by `/check` runs against the simulator.

A rule fires after two breaching runs; its first notification fails and is delivered by the next
run; a run whose stream is cut every time holds the state instead of flapping; a reminder goes
out; the traffic calms down and the rule resolves. Each run is a fresh app (as a new Cloud Run
instance would be): only the state file remembers.
"""

from __future__ import annotations

import json
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from collector.alerting.notification import verify_signature
from collector.alerting.rules import parse_rules
from collector.app import create_app
from collector.cli.table import cell
from collector.config import Settings
from collector.simulator import Fault, SimConfig, Simulator
from collector.stores import file_document

KEY = "demo-signing-key-not-secret"
RULES = {
    "notifiers": {
        "ops": {"type": "webhook", "url_env": "DEMO_HOOK_URL", "signing_key_env": "DEMO_HOOK_KEY"}
    },
    "rules": [
        {
            "name": "traffic-high",
            "metric": "events",
            "window_minutes": 30,
            "lag_minutes": 0,
            "above": 2000,
            "for_runs": 2,
            "repeat_minutes": 30,
            "severity": "critical",
            "notify": ["ops"],
        }
    ],
}


class _Receiver(BaseHTTPRequestHandler):
    """A local webhook that fails its first delivery, then accepts and checks signatures."""

    answers: ClassVar[list[int]] = [500]
    accepted: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            ok = verify_signature(
                body,
                self.headers.get("X-Collector-Timestamp", ""),
                self.headers.get("X-Collector-Signature", ""),
                KEY,
                now=datetime.now(UTC).timestamp(),
            )
            self.accepted.append({**json.loads(body), "signature_ok": ok})
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def run_incident(settings_env: dict[str, str]) -> int:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    env = {"DEMO_HOOK_URL": f"http://127.0.0.1:{hook.server_port}/hook", "DEMO_HOOK_KEY": KEY}
    rules = parse_rules(RULES, env)
    start = (datetime.now(UTC) - timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    busy = {"events_per_minute": 120}
    quiet = {"events_per_minute": 20}
    cut = [Fault.reset(2_000)] * 3
    steps = [
        (0, busy, [], "busy hour"),
        (15, busy, [], "still busy: fires (2 runs)"),
        (30, busy, cut, "every attempt cut: partial"),
        (45, busy, [], "still busy"),
        (60, quiet, [], "traffic back to normal"),
    ]
    print(
        "\nalert rule 'traffic-high': events in 30 min above 2000, for 2 runs, remind every "
        "30 min, webhook fails its first delivery\n"
    )
    print(
        f"{'run at':8} {'scenario':28} {'state':9} {'value':>6} {'complete':>8}  "
        f"{'owed':10} {'delivered':10} errors"
    )
    problems = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = file_document(Path(tmp) / "state.json")
        for minutes, traffic, faults, title in steps:
            now = start + timedelta(minutes=minutes)
            with Simulator(
                SimConfig(
                    seed=5,
                    users=3000,
                    username="demo-sa",
                    secret="demo-secret-not-real",
                    project_id="1",
                    **traffic,
                )
            ) as sim:
                sim.script(list(faults))
                settings = Settings.from_env({**settings_env, "MIXPANEL_EXPORT_URL": sim.url})
                app = create_app(settings, now=lambda now=now: now, rules=rules, store=store)
                body = app.test_client().get("/check").get_json()
            rule = body["rules"][0]
            delivered = ",".join(i.split(":")[1] for i in rule["notified"]) or "-"
            errors = cell("; ".join(rule["notify_errors"].values()) or "-", 40).rstrip()
            print(
                f"+{minutes:<3} min {title:28} {rule['state']:9} {rule['value'] or 0:>6} "
                f"{rule['complete']!s:>8}  {','.join(rule['owed']) or '-':10} "
                f"{delivered:10} {errors}"
            )
    hook.shutdown()
    kinds = [n["kind"] for n in _Receiver.accepted]
    print(
        f"\nthe webhook received: {', '.join(kinds)} "
        f"(signatures valid: {all(n['signature_ok'] for n in _Receiver.accepted)})"
    )
    if kinds != ["firing", "reminder", "resolved"]:
        problems += 1
        print("WRONG: expected exactly one firing, one reminder and one resolved")
    return problems
