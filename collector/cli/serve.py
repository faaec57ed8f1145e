"""`collector serve`: the service on this machine, under gunicorn with the shipped settings.

    collector serve --simulator      # against the embedded Mixpanel simulator: no credentials
    collector serve                  # against Mixpanel, with the settings of the environment

Both listen on loopback, on free ports unless --port is given, and print the curl lines to
try. gunicorn runs with the shipped settings (collector/gunicorn_config.py, which
gunicorn.conf.py loads): GUNICORN_* variables and --workers / --threads change them, nothing
else does. With --simulator the service reads the simulator's deterministic events, with a query
budget of 100000 an hour and 1000 a second unless EXPORT_QUERIES_PER_HOUR / _PER_SECOND say
otherwise (the simulator enforces no limit; against Mixpanel the service keeps its 60 and 3).
The rules are --rules, else $COLLECTOR_RULES, else (with --simulator) the example rules file:
./rules.example.yaml when it is there, else the copy installed with the package. Their state
lives in a temporary file removed on exit unless STATE_STORE is set. With LEDGER_STORE set (an
absolute directory will do), what is read is kept in the slice ledger and `days=N` windows
work. Ctrl-C stops both, the service with gunicorn's graceful drain.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

from collector.cli.args import command, port, positive
from collector.config import (
    LOOPBACK_QUERIES_PER_HOUR,
    LOOPBACK_QUERIES_PER_SECOND,
    MIXPANEL_QUERIES_PER_HOUR,
    MIXPANEL_QUERIES_PER_SECOND,
)
from collector.simulator import SimConfig, Simulator

# The standalone simulator's defaults (python -m collector.simulator), so the docs agree.
SIM = SimConfig()
# The checkout's example rules; an installed package has its own copy (the same bytes).
EXAMPLE_RULES = Path("rules.example.yaml")
PACKAGED_RULES = Path(__file__).resolve().parent.parent / "rules.example.yaml"
# The simulator enforces no query limit: the most the settings allow an export on loopback.
SIM_BUDGET = {
    "EXPORT_QUERIES_PER_HOUR": str(LOOPBACK_QUERIES_PER_HOUR),
    "EXPORT_QUERIES_PER_SECOND": str(LOOPBACK_QUERIES_PER_SECOND),
}
READY_SECONDS = 60
GUNICORN = [sys.executable, "-m", "gunicorn", "--config", "python:collector.gunicorn_config"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The `serve` subcommand."""
    serve = command(
        sub,
        "serve",
        "run the service here (gunicorn), optionally against the embedded simulator",
        __doc__,
        run,
    )
    serve.add_argument(
        "--simulator",
        action="store_true",
        help="start the Mixpanel simulator on loopback and point the service at it",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=port, default=0, help="service port (default: a free one)")
    serve.add_argument("--rules", type=Path, help="rules file for /check, /rules and /status")
    serve.add_argument(
        "--workers",
        type=positive,
        help="gunicorn workers (default: $GUNICORN_WORKERS, else the shipped settings')",
    )
    serve.add_argument(
        "--threads",
        type=positive,
        help="threads per worker (default: $GUNICORN_THREADS, else the shipped settings')",
    )
    serve.add_argument("--seed", type=int, default=SIM.seed, help="simulator seed")
    serve.add_argument(
        "--events-per-minute",
        type=positive,
        default=40,
        help="simulated events per minute (40)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); gunicorn's exit status if it stops on its own."""
    # SIGTERM ends this command as Ctrl-C does: both stop the service gracefully. SIGINT too
    # when started in the background of a script, which would otherwise inherit it ignored.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, signal.default_int_handler)
    with ExitStack() as stack:
        env = dict(os.environ)
        sim_url = None
        if args.simulator:
            sim = stack.enter_context(
                Simulator(SimConfig(seed=args.seed, events_per_minute=args.events_per_minute))
            )
            sim_url = sim.url
            env.pop("MIXPANEL_API_SECRET", None)  # the simulator takes a service account
            env.update(
                MIXPANEL_EXPORT_URL=sim.url,
                MIXPANEL_SERVICE_ACCOUNT_USERNAME=SIM.username,
                MIXPANEL_SERVICE_ACCOUNT_SECRET=SIM.secret,
                MIXPANEL_PROJECT_ID=SIM.project_id,
            )
            for name, value in SIM_BUDGET.items():
                env.setdefault(name, value)
        rules = _rules(args, env)
        if rules:
            env["COLLECTOR_RULES"] = str(rules.resolve())
            if not env.get("STATE_STORE"):
                state = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "state.json"
                env["STATE_STORE"] = f"file:{state}"
        port = args.port or _free_port(args.host)
        env.update(PORT=str(port), GUNICORN_HOST=args.host)
        # A flag wins; else the environment's (checked by collector/gunicorn_config.py, which
        # stops with one line naming a bad one); else the shipped settings, as they are.
        for name, flag in (("GUNICORN_WORKERS", args.workers), ("GUNICORN_THREADS", args.threads)):
            if flag is not None:
                env[name] = str(flag)
        env.setdefault("LOG_FORMAT", "text")
        base = f"http://{_reachable(args.host)}:{port}"
        with _gunicorn(env) as proc:
            if not serving(proc, base):
                if proc.poll() is None:  # stopped on the way out
                    print(
                        f"error: {base}/healthz did not answer in {READY_SECONDS} s",
                        file=sys.stderr,
                    )
                    return 1
                return proc.returncode or 1  # an exit says why itself (one line, on stderr)
            _banner(base, sim_url, rules, env)
            try:
                return proc.wait()
            except KeyboardInterrupt:
                print("\nstopping ...", file=sys.stderr, flush=True)
                return 0


def _rules(args: argparse.Namespace, env: dict[str, str]) -> Path | None:
    if args.rules:
        return Path(args.rules)
    if env.get("COLLECTOR_RULES"):
        return Path(env["COLLECTOR_RULES"])
    if args.simulator:
        return example_rules()
    return None


def example_rules() -> Path:
    """The example rules file: the checkout's in its directory, else the package's copy."""
    return EXAMPLE_RULES if EXAMPLE_RULES.is_file() else PACKAGED_RULES


@contextmanager
def _gunicorn(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    # Its own session: Ctrl-C reaches this command only, which then asks gunicorn for the
    # graceful stop (SIGTERM) instead of its quick one (SIGINT).
    proc = subprocess.Popen([*GUNICORN, "collector.wsgi:app"], env=env, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM (gunicorn's graceful stop), then SIGKILL if it is still there after 15 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serving(proc: subprocess.Popen[Any], base: str, seconds: float = READY_SECONDS) -> bool:
    """Whether the service at `base` answers /healthz within `seconds`; False as soon as its
    process has exited. (The arbiter binds before its workers have imported the app, so a
    probe may be refused or just not answered for a while.)"""
    ready_by = time.monotonic() + seconds
    while time.monotonic() < ready_by:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return True
        except requests.RequestException:  # not listening yet, or a worker still importing
            time.sleep(0.1)
    return False


def _banner(base: str, sim_url: str | None, rules: Path | None, env: dict[str, str]) -> None:
    ledger = env.get("LEDGER_STORE")
    lines = [f"service:   {base}  (gunicorn; its log follows on stderr)"]
    if sim_url:
        lines.append(f"simulator: {sim_url}  (MIXPANEL_EXPORT_URL: simulated events, no secret)")
        lines.append(
            f"budget:    {env['EXPORT_QUERIES_PER_HOUR']} Export queries an hour, "
            f"{env['EXPORT_QUERIES_PER_SECOND']} a second (the simulator enforces no limit; "
            f"against Mixpanel the service keeps its {MIXPANEL_QUERIES_PER_HOUR} and "
            f"{MIXPANEL_QUERIES_PER_SECOND})"
        )
    if rules:
        lines.append(f"rules:     {rules}  (state: {env.get('STATE_STORE')})")
    lines += [
        "",
        "try:",
        f"  curl -s {base}/healthz",
        f"  curl -s '{base}/distinct-users?minutes=60'",
        f"  curl -s '{base}/events?minutes=60&event=Sign%20Up&event=Purchase'",
        f"  curl -s {base}/active-users",
    ]
    if ledger:
        lines.append(
            f"  curl -s '{base}/distinct-users?days=7'   # from the slice ledger ({ledger})"
        )
    if rules:
        lines += [
            f"  curl -s '{base}/check?dry_run=1'   # each rule's decision; nothing saved or sent",
            f"  curl -s {base}/check               # a real run: saves state, notifies",
            f"  curl -s {base}/rules               # the rules' states, no Export query",
            f"  open {base}/status in a browser",
        ]
    else:
        lines.append(f"  (no rules: add --rules {example_rules()} to try /check, /rules, /status)")
    lines.append("Ctrl-C stops it.")
    print("\n".join(lines), flush=True)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _reachable(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
