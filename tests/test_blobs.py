"""Versioned objects in a directory and in Cloud Storage (fake-gcs-server): writes that lose a
race say so, and nothing is overwritten that was not read."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.errors import StoreConflict, StoreError
from collector.stores import ABSENT, BlobStore, open_store
from collector.stores.directory import DirBlobStore
from collector.stores.gcs import GcsBlobStore
from tests.gcs import client


@pytest.fixture(params=["dir", "gcs"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "dir":
        return DirBlobStore(tmp_path / "ledger")
    return GcsBlobStore(request.getfixturevalue("bucket"), "ledger", client())


def test_create_only_once_and_replace_only_what_was_read(blobs: BlobStore) -> None:
    assert blobs.get("a/b") is None
    first = blobs.put("a/b", b"one", if_version=ABSENT)
    with pytest.raises(StoreConflict):
        blobs.put("a/b", b"two", if_version=ABSENT)  # somebody created it first
    data, version = blobs.get("a/b")  # type: ignore[misc]
    assert (data, version) == (b"one", first)
    second = blobs.put("a/b", b"two", if_version=version)
    with pytest.raises(StoreConflict):
        blobs.put("a/b", b"three", if_version=version)  # read before the other write
    assert blobs.get("a/b") == (b"two", second)
    blobs.put("a/c", b"x")  # unconditional
    blobs.put("z", b"y")
    assert blobs.names("a/") == ["a/b", "a/c"] and blobs.names() == ["a/b", "a/c", "z"]
    blobs.delete("a/b")
    blobs.delete("a/b")  # already gone: nothing to do
    assert blobs.names("a/") == ["a/c"]


def test_urls_name_their_store_and_bad_ones_name_the_setting(tmp_path: Path) -> None:
    assert (
        open_store(f"file:{tmp_path}", "LEDGER_STORE", check=False).describe() == f"file:{tmp_path}"
    )
    assert open_store("gs://b/p/q", "LEDGER_STORE", check=False).describe() == "gs://b/p/q"
    for bad in ("relative/dir", "gs://", "file:"):
        with pytest.raises(ValueError, match="LEDGER_STORE="):
            open_store(bad, "LEDGER_STORE", check=False)
    with pytest.raises(ValueError, match="not an object name"):
        DirBlobStore(tmp_path).put("../escape", b"x")


def test_a_directory_that_cannot_be_written_is_a_store_error(tmp_path: Path) -> None:
    # A file where the directory should be: refused even to root, unlike a chmod.
    (tmp_path / "taken").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write"):
        DirBlobStore(tmp_path / "taken").put("x/y", b"1")
