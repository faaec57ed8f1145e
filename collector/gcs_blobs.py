"""Named byte objects with versions under a Cloud Storage prefix (see `collector.blobs`).

A version is the object's generation; a conditional write is an upload with `ifGenerationMatch`,
which Cloud Storage applies atomically.
"""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions as gcs_errors
from google.cloud import storage

from collector import gcs
from collector.blobs import check_name
from collector.errors import StoreConflict


class GcsBlobStore:
    """Objects under a prefix of a bucket; a version is the object's generation.

    Every call may be given `seconds`: what the caller may still spend waiting on the store
    (its request timeout and its retries stay within it)."""

    def __init__(self, bucket: str, prefix: str = "", client: storage.Client | None = None):
        self.bucket_name = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client

    def describe(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")

    @property
    def client(self) -> storage.Client:
        # Created on first use, so building the app needs neither credentials nor the network.
        if self._client is None:
            self._client = gcs.make_client(self.describe())
        return self._client

    def _blob(self, name: str) -> storage.Blob:
        check_name(name)
        return self.client.bucket(self.bucket_name).blob(self.prefix + name)

    def get(self, name: str, *, seconds: float | None = None) -> tuple[bytes, int] | None:
        timeout, retry = gcs.limits(seconds)
        with gcs.failures(lambda: f"cannot read {self.describe()}/{name}"):
            blob = self._blob(name)
            try:
                data = blob.download_as_bytes(timeout=timeout, retry=retry)
            except gcs_errors.NotFound:
                return None
        return data, int(blob.generation)

    def put(
        self, name: str, data: bytes, *, if_version: Any = None, seconds: float | None = None
    ) -> int:
        timeout, retry = gcs.limits(seconds)
        kwargs: dict[str, Any] = {}
        if if_version is not None:
            kwargs["if_generation_match"] = int(if_version)
        with gcs.failures(lambda: f"cannot write {self.describe()}/{name}"):
            blob = self._blob(name)
            try:
                # A conditional upload is safe to retry: a repeat of a write that landed is a 412.
                blob.upload_from_string(
                    data,
                    content_type="application/octet-stream",
                    timeout=timeout,
                    retry=retry if if_version is not None else None,
                    **kwargs,
                )
            except gcs_errors.PreconditionFailed:
                raise StoreConflict(f"{self.describe()}/{name} changed since it was read") from None
        return int(blob.generation)

    def names(self, prefix: str = "", *, seconds: float | None = None) -> list[str]:
        timeout, retry = gcs.limits(seconds)
        with gcs.failures(lambda: f"cannot list {self.describe()}"):
            blobs = self.client.list_blobs(
                self.bucket_name, prefix=self.prefix + prefix, timeout=timeout, retry=retry
            )
            return sorted(b.name[len(self.prefix) :] for b in blobs)

    def delete(self, name: str, *, seconds: float | None = None) -> None:
        timeout, retry = gcs.limits(seconds)
        with gcs.failures(lambda: f"cannot delete {self.describe()}/{name}"):
            try:
                self._blob(name).delete(timeout=timeout, retry=retry)
            except gcs_errors.NotFound:
                return
