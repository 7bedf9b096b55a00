"""Operations persist across reopenings, are idempotent by request id, and carry response or error."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import wrappers_pb2

from maskdpo.server.errors import Conflict, FailedPrecondition, NotFound
from maskdpo.server.store.operations import OperationStore


def test_lifecycle_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "ops.sqlite"
    store = OperationStore(path)
    name, created = store.create("deploy", wrappers_pb2.StringValue(value="validating"), request_id="r1")
    again, created_again = store.create("deploy", wrappers_pb2.StringValue(value="other"), request_id="r1")
    assert created and not created_again and again == name
    other, _ = store.create("round", wrappers_pb2.StringValue(value="x"), request_id="r1")
    assert other != name  # request ids are per kind
    store.update_metadata(name, wrappers_pb2.StringValue(value="loading"))
    with pytest.raises(FailedPrecondition):
        store.delete(name)
    store.request_cancel(name)
    assert store.cancel_requested(name)
    store.finish(name, error=Conflict("another deploy runs"))
    store.close()

    reopened = OperationStore(path)
    op = reopened.get(name)
    meta = wrappers_pb2.StringValue()
    assert op.done and op.metadata.Unpack(meta) and meta.value == "loading"
    assert op.error.message == "another deploy runs" and op.WhichOneof("result") == "error"
    assert reopened.unfinished("round") == [other]
    page, more = reopened.page(None, 0, 1)
    assert len(page) == 1 and more
    reopened.finish(other, response=wrappers_pb2.StringValue(value="done"))
    result = wrappers_pb2.StringValue()
    assert reopened.get(other).response.Unpack(result) and result.value == "done"
    reopened.delete(name)
    with pytest.raises(NotFound):
        reopened.get(name)


def test_finish_needs_exactly_one(tmp_path: Path) -> None:
    store = OperationStore(tmp_path / "ops.sqlite")
    name, _ = store.create("deploy", wrappers_pb2.StringValue())
    with pytest.raises(ValueError):
        store.finish(name)
