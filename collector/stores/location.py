"""Where a store is, from its setting (LEDGER_STORE, BUDGET_STORE, STATE_STORE): parsed without
I/O, for the settings to validate; then opened, and a directory probed once, by the factory.

A store is `gs://<bucket>/<prefix>` or an absolute directory (`file:` optional); a document
(the rule state) is `gs://<bucket>/<object>` or a file, which is an object in its directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from collector.errors import ConfigError, StoreError
from collector.stores.blob import BlobStore, probe
from collector.stores.directory import DirBlobStore
from collector.stores.document import Document

if TYPE_CHECKING:
    from google.cloud import storage


@dataclass(frozen=True)
class Location:
    """A store's place: a bucket and a prefix, or a directory; for a document, its name too."""

    setting: str
    url: str
    bucket: str | None  # None: a directory on this machine
    path: str  # the prefix in the bucket, or the directory
    name: str | None = None  # a document's object name in that place


def parse_location(url: str, setting: str, *, document: bool = False) -> Location:
    """`url` as a place for a store (or, with `document`, for one object); ValueError naming
    `setting` and the forms it takes if it is none."""
    url = url.strip()
    if url.startswith("gs://"):
        bucket, _, rest = url[len("gs://") :].partition("/")
        rest = rest.strip("/")
        if not bucket:
            form = "gs://<bucket>/<object>" if document else "gs://<bucket>/<prefix>"
            raise ValueError(f"{setting}={url!r} needs a bucket: {form}")
        if not document:
            return Location(setting, url, bucket, rest)
        if not rest or url.endswith("/"):
            raise ValueError(f"{setting}={url!r} needs an object name: gs://<bucket>/<object>")
        where = PurePosixPath(rest)
        return Location(setting, url, bucket, str(where.parent).strip("."), where.name)
    path = url[len("file:") :] if url.startswith("file:") else url
    if path.startswith("//"):  # file:///abs/path
        path = path[2:]
    if document:
        if not url.startswith("file:") and ":" in url.split("/")[0]:
            raise ValueError(f"{setting}={url!r} must be file:<path> or gs://<bucket>/<object>")
        if not path or path.endswith("/"):
            raise ValueError(f"{setting}={url!r} needs a file name: file:<path>")
        where = PurePosixPath(path)
        return Location(setting, url, None, str(where.parent), where.name)
    if not path or not os.path.isabs(path):
        raise ValueError(
            f"{setting}={url!r} must be gs://<bucket>/<prefix> or an absolute directory"
        )
    return Location(setting, url, None, path)


def open_store(
    where: Location | str,
    setting: str = "",
    *,
    check: bool = True,
    client: storage.Client | None = None,
) -> BlobStore:
    """The store at `where`. With `check`, a directory is probed now (ConfigError naming the
    setting if it cannot be written: every answer would otherwise fail later, one by one); a
    Cloud Storage prefix is checked by its first use, so that start-up needs neither
    credentials nor the network."""
    if isinstance(where, str):
        where = parse_location(where, setting)
    store = _backend(where, client)
    if check and store.local:
        try:
            probe(store)
        except StoreError as exc:
            raise _unusable(where, exc) from None
    return store


def open_document(
    where: Location | str,
    setting: str = "",
    *,
    check: bool = True,
    client: storage.Client | None = None,
) -> Document:
    """The document at `where` (`open_store`'s checks, and a file that cannot be read)."""
    if isinstance(where, str):
        where = parse_location(where, setting, document=True)
    assert where.name is not None, "a document needs an object name"
    store = _backend(where, client)
    document = Document(store, where.name)
    if check and store.local:
        try:
            probe(store, beside=where.name)
            store.get(where.name)
        except StoreError as exc:
            raise _unusable(where, exc) from None
    return document


def file_document(path: str | os.PathLike[str]) -> Document:
    """The document in a file on this machine, unchecked (a test's or a command's state)."""
    return open_document(f"file:{os.fspath(path)}", "STATE_STORE", check=False)


def _backend(where: Location, client: storage.Client | None) -> BlobStore:
    if where.bucket is None:
        # A document keeps its lock beside it, as `<name>.lock`, not in a hidden file of a
        # directory it may share with other things.
        lock = f"{where.name}.lock" if where.name else ".lock"
        return DirBlobStore(where.path or ".", lock=lock)
    # Cloud Storage's client library is loaded only where a store is on it: it is a large
    # share of a process's start-up.
    from collector.stores.gcs import GcsBlobStore

    return GcsBlobStore(where.bucket, where.path, client)


# How each store's refusal reads at start-up (their words since 0.3.0); another setting's, the
# first.
REFUSALS = {
    "BUDGET_STORE": "{setting}={url!r} cannot be used: {problem}; give it a directory this "
    "service's user can write, or a Cloud Storage prefix (gs://<bucket>/<prefix>)",
    "LEDGER_STORE": "{setting}={url}: {problem}; give a directory this service's user can "
    "write, or gs://<bucket>/<prefix>",
    "STATE_STORE": "{setting}: {problem}; give it a path this service's user can write, or a "
    "Cloud Storage object (gs://<bucket>/<object>)",
}


def _unusable(where: Location, exc: StoreError) -> ConfigError:
    refusal = REFUSALS.get(where.setting, REFUSALS["BUDGET_STORE"])
    return ConfigError(refusal.format(setting=where.setting, url=where.url, problem=exc.message))
