"""Desired jobs vs the jobs Scheduler has: the actions that make them match. No I/O here.

Ownership is the name prefix: jobs whose id starts with it are ours to create, update and
delete; every other job in the location is left alone, even if it calls the same service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from google.cloud import scheduler_v1

from collector.schedule.jobs import JobSpec

# The fields this tool owns. An update names exactly the ones that differ, so Scheduler's own
# fields (state, status, schedule times) and a pause set by hand are never overwritten.
MANAGED_FIELDS = (
    "description",
    "schedule",
    "time_zone",
    "http_target",
    "retry_config",
    "attempt_deadline",
)
MAX_DOUBLINGS = 3


@dataclass(frozen=True)
class Target:
    """Where and how every declared job runs: the same for all jobs of one sync."""

    project: str
    location: str
    service_url: str
    invoker_sa: str
    time_zone: str = "Etc/UTC"
    prefix: str = "rt-mp-"
    attempt_deadline: int = 180  # seconds
    retries: int = 0
    min_backoff: int = 60  # seconds
    max_backoff: int = 600  # seconds

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def audience(self) -> str:
        # Cloud Run checks the token's audience against the service URL: no path, no query.
        parts = urlsplit(self.service_url)
        return f"{parts.scheme}://{parts.netloc}"

    def job_name(self, job_id: str) -> str:
        return f"{self.parent}/jobs/{job_id}"


@dataclass(frozen=True)
class Action:
    kind: str  # "create", "update", "delete", "unchanged"; "declared" when not compared
    job_id: str
    job: scheduler_v1.Job | None = None  # the desired job (create, update)
    fields: tuple[str, ...] = ()  # changed fields (update)
    note: str = ""

    def line(self) -> str:
        detail = {
            "create": self.note,
            "update": "changes " + ", ".join(self.fields),
            "delete": "no longer declared",
            "unchanged": self.note,
            "declared": self.note,
        }[self.kind]
        return f"{self.kind:<9}  {self.job_id}" + (f"  {detail}" if detail else "")


def job_id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def desired_job(spec: JobSpec, target: Target) -> scheduler_v1.Job:
    method = scheduler_v1.HttpMethod.GET if spec.method == "GET" else scheduler_v1.HttpMethod.POST
    description = spec.description or f"{spec.method} {spec.target}"
    return scheduler_v1.Job(
        name=target.job_name(target.prefix + spec.name),
        description=f"{description} (managed by collector.schedule; edits are overwritten)",
        schedule=spec.schedule,
        time_zone=target.time_zone,
        http_target=scheduler_v1.HttpTarget(
            uri=target.audience + spec.target,
            http_method=method,
            oidc_token=scheduler_v1.OidcToken(
                service_account_email=target.invoker_sa, audience=target.audience
            ),
        ),
        retry_config=scheduler_v1.RetryConfig(
            retry_count=target.retries,
            max_retry_duration=timedelta(0),  # no time limit: retry_count alone bounds retries
            min_backoff_duration=timedelta(seconds=target.min_backoff),
            max_backoff_duration=timedelta(seconds=target.max_backoff),
            max_doublings=MAX_DOUBLINGS,
        ),
        attempt_deadline=timedelta(seconds=target.attempt_deadline),
    )


def changed_fields(desired: scheduler_v1.Job, existing: scheduler_v1.Job) -> tuple[str, ...]:
    return tuple(f for f in MANAGED_FIELDS if _value(desired, f) != _value(existing, f))


def plan(
    desired: Iterable[scheduler_v1.Job], existing: Iterable[scheduler_v1.Job], prefix: str
) -> list[Action]:
    """Create what is missing, update what differs, delete prefixed jobs no longer declared."""
    if not prefix:
        raise ValueError("an empty prefix would make every job in the location ours")
    ours = {job_id(job.name): job for job in existing if job_id(job.name).startswith(prefix)}
    actions: list[Action] = []
    wanted: set[str] = set()
    for job in desired:
        jid = job_id(job.name)
        wanted.add(jid)
        current = ours.get(jid)
        if current is None:
            actions.append(Action("create", jid, job, MANAGED_FIELDS, note=job_summary(job)))
            continue
        fields = changed_fields(job, current)
        paused = current.state == scheduler_v1.Job.State.PAUSED
        if fields:
            actions.append(Action("update", jid, job, fields))
        else:
            actions.append(Action("unchanged", jid, note="(paused)" if paused else ""))
    actions.extend(Action("delete", jid) for jid in sorted(ours) if jid not in wanted)
    return actions


def job_summary(job: scheduler_v1.Job) -> str:
    """`GET https://.../events?minutes=60 at '5 * * * *' Etc/UTC`."""
    method = scheduler_v1.HttpMethod(job.http_target.http_method).name
    return f"{method} {job.http_target.uri} at '{job.schedule}' {job.time_zone}"


def _value(job: scheduler_v1.Job, field: str) -> object:
    if field == "http_target":
        # Scheduler adds headers of its own (User-Agent) to a stored job: not compared.
        t = job.http_target
        return (
            t.uri,
            int(t.http_method),
            bytes(t.body),
            t.oidc_token.service_account_email,
            t.oidc_token.audience,
            t.oauth_token.service_account_email,
        )
    if field == "retry_config":
        r = job.retry_config
        return (
            r.retry_count,
            r.max_retry_duration,
            r.min_backoff_duration,
            r.max_backoff_duration,
            r.max_doublings,
        )
    return getattr(job, field)
