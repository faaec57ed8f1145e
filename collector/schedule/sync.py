"""The Scheduler calls: list the jobs, then carry out a plan. Every API error becomes a message.

On the REST transport google-api-core maps errors by HTTP status alone: 409 arrives as
`Conflict` (not `AlreadyExists`) and 403 as `Forbidden` (not `PermissionDenied`), so both
families are caught by their HTTP class.

Races with someone else editing the same location are recovered where the intent is clear:
a job created since the listing is updated instead (all managed fields), a job deleted since
the listing is created again, and a job already gone needs no delete. Anything else (permission
denied, an invalid job, an unavailable API) stops the sync with a message and a non-zero exit.
"""

from __future__ import annotations

from collections.abc import Callable

import requests
from google.api_core import exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import scheduler_v1
from google.protobuf import field_mask_pb2

from collector.schedule.plan import MANAGED_FIELDS, Action, Target

# What a Scheduler call can raise besides an API answer: no credentials, no network.
CALL_ERRORS = (
    exceptions.GoogleAPICallError,
    auth_exceptions.GoogleAuthError,
    requests.RequestException,
)


class SyncError(Exception):
    """A Scheduler call failed in a way the sync cannot recover from."""


def make_client() -> scheduler_v1.CloudSchedulerClient:
    try:
        return scheduler_v1.CloudSchedulerClient(transport="rest")
    except auth_exceptions.GoogleAuthError as exc:
        raise SyncError(
            f"no Google credentials: {str(exc).rstrip('.')}. Run "
            "`gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS)."
        ) from exc


def list_jobs(client: scheduler_v1.CloudSchedulerClient, target: Target) -> list[scheduler_v1.Job]:
    try:
        return list(client.list_jobs(parent=target.parent))
    except CALL_ERRORS as exc:
        raise SyncError(
            f"cannot list the jobs in {target.parent}: {_explain(exc, target)}"
        ) from exc


def apply(
    client: scheduler_v1.CloudSchedulerClient,
    target: Target,
    actions: list[Action],
    say: Callable[[str], None],
) -> None:
    """Carry out the create/update/delete actions in order; stop at the first unrecoverable one."""
    for action in actions:
        try:
            _apply_one(client, target, action, say)
        except CALL_ERRORS as exc:
            raise SyncError(
                f"{action.kind} {action.job_id} failed: {_explain(exc, target)}"
            ) from exc


def _apply_one(
    client: scheduler_v1.CloudSchedulerClient,
    target: Target,
    action: Action,
    say: Callable[[str], None],
) -> None:
    if action.kind == "delete":
        try:
            client.delete_job(name=target.job_name(action.job_id))
            say(f"deleted    {action.job_id}")
        except exceptions.NotFound:
            say(f"deleted    {action.job_id}  (it was already gone)")
        return
    job = action.job
    if job is None:
        raise ValueError(f"{action.kind} {action.job_id}: the action carries no job")
    if action.kind == "create":
        try:
            client.create_job(parent=target.parent, job=job)
            say(f"created    {action.job_id}")
        except exceptions.Conflict as exc:
            if not _already_exists(exc):
                raise
            _update(client, job, MANAGED_FIELDS)
            say(f"updated    {action.job_id}  (it appeared since the listing: all managed fields)")
    elif action.kind == "update":
        try:
            _update(client, job, action.fields)
            say(f"updated    {action.job_id}  ({', '.join(action.fields)})")
        except exceptions.NotFound:
            client.create_job(parent=target.parent, job=job)
            say(f"created    {action.job_id}  (it was deleted since the listing)")


def _update(
    client: scheduler_v1.CloudSchedulerClient, job: scheduler_v1.Job, fields: tuple[str, ...]
) -> None:
    client.update_job(job=job, update_mask=field_mask_pb2.FieldMask(paths=list(fields)))


def _already_exists(exc: exceptions.Conflict) -> bool:
    # A 409 is ALREADY_EXISTS or ABORTED; only the first means "someone created it".
    if isinstance(exc, exceptions.AlreadyExists):
        return True
    try:
        status = exc.response.json()["error"]["status"]  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError, ValueError):
        return True
    return status in ("ALREADY_EXISTS", None)


def _explain(exc: Exception, target: Target) -> str:
    text = str(exc)
    if isinstance(exc, exceptions.Forbidden):
        return (
            f"{text}. The caller needs roles/cloudscheduler.admin on project {target.project} "
            f"and roles/iam.serviceAccountUser on {target.invoker_sa} (to attach its OIDC "
            "token); the Cloud Scheduler API must be enabled."
        )
    if isinstance(exc, exceptions.NotFound):
        return f"{text}. Check --project and --location (a Cloud Scheduler region)."
    if isinstance(exc, exceptions.InvalidArgument):
        return f"{text}. Scheduler rejected the job definition."
    return text
