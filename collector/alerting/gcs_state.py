"""Rule state in a Cloud Storage object (see `collector.alerting.store`)."""

from __future__ import annotations

import uuid
from typing import Any

from google.api_core import exceptions as gcs_errors
from google.cloud import storage

from collector import gcs
from collector.alerting.store import WRITE_ID_KEY, decode, encode
from collector.errors import StoreConflict


class GcsStateStore:
    """An object in a Cloud Storage bucket; the version is its generation (0 while absent).

    A save is an upload with `ifGenerationMatch`, which Cloud Storage applies atomically. The
    client retries a failed upload, so a 412 can also mean that our own first attempt landed and
    only its answer was lost: each save tags its object with a random write id, and a 412 on an
    object that carries ours is a success, not a conflict.
    """

    def __init__(self, bucket: str, name: str, client: storage.Client | None = None) -> None:
        self.bucket_name = bucket
        self.name = name
        self._client = client

    def describe(self) -> str:
        return f"gs://{self.bucket_name}/{self.name}"

    def __repr__(self) -> str:
        return f"GcsStateStore({self.describe()!r})"

    @property
    def client(self) -> storage.Client:
        # Created on first use, so building the app needs neither credentials nor the network.
        if self._client is None:
            self._client = gcs.make_client(self.describe())
        return self._client

    def load(self) -> tuple[dict[str, Any], int]:
        # A missing bucket is also a 404 here; it shows up as an error at the first save.
        with gcs.failures(lambda: f"cannot read {self.describe()}"):
            blob = self._bucket().blob(self.name)
            try:
                # One request: the answer carries the generation of the bytes it returns.
                data = blob.download_as_bytes(timeout=gcs.TIMEOUT_SECONDS, retry=gcs.RETRY)
            except gcs_errors.NotFound:
                return {}, 0
        return decode(data, self.describe()), int(blob.generation)

    def save(self, doc: dict[str, Any], version: int) -> int:
        write_id = uuid.uuid4().hex
        with gcs.failures(lambda: f"cannot write {self.describe()}"):
            blob = self._bucket().blob(self.name)
            blob.metadata = {WRITE_ID_KEY: write_id}
            try:
                blob.upload_from_string(
                    encode(doc),
                    content_type="application/json",
                    if_generation_match=int(version),
                    timeout=gcs.TIMEOUT_SECONDS,
                    retry=gcs.RETRY,
                )
                return int(blob.generation)
            except gcs_errors.PreconditionFailed:
                pass
        landed = self._generation_written_by(write_id)
        if landed is None:
            raise StoreConflict(f"{self.describe()} changed since it was loaded")
        return landed

    def _bucket(self) -> storage.Bucket:
        return self.client.bucket(self.bucket_name)

    def _generation_written_by(self, write_id: str) -> int | None:
        with gcs.failures(lambda: f"cannot read {self.describe()}"):
            current = self._bucket().get_blob(
                self.name, timeout=gcs.TIMEOUT_SECONDS, retry=gcs.RETRY
            )
        if current is not None and (current.metadata or {}).get(WRITE_ID_KEY) == write_id:
            return int(current.generation)
        return None
