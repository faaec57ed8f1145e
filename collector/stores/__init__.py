"""Everything the service keeps, on one blob-store protocol: the slice ledger, the shared query
budget and the rule state are versioned objects in a directory or under a Cloud Storage prefix.

- `blob`: the protocol (get with version, put if-version, delete, list) and the writability
  probe;
- `directory`, `gcs`: the two backends (the Cloud Storage one is loaded only when a store is on
  it: its client library is a large share of a process's start-up);
- `document`: a JSON document on a blob store (the rule state), read-modify-write;
- `location`: a store's setting parsed (no I/O), and `open_store` / `open_document`, which
  build the backend and probe a directory once.
"""

from collector.stores.blob import ABSENT, BlobStore, check_name, probe
from collector.stores.document import Document, DocumentStore, update
from collector.stores.location import (
    Location,
    file_document,
    open_document,
    open_store,
    parse_location,
)

__all__ = [
    "ABSENT",
    "BlobStore",
    "Document",
    "DocumentStore",
    "Location",
    "check_name",
    "file_document",
    "open_document",
    "open_store",
    "parse_location",
    "probe",
    "update",
]
