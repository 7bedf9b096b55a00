"""The push wire: chunks by size, tensors as bytes and back, the sender's order checks."""

from __future__ import annotations

import pytest
import torch

from maskdpo.trainer.weight_push import PushUpdate, as_bytes, chunks, from_bytes


def test_chunks_split_by_bytes_and_never_split_a_tensor() -> None:
    rows = [("a", "float32", [4], 16), ("b", "float32", [4], 16), ("c", "float32", [100], 400), ("d", "bfloat16", [2], 4)]
    out = chunks(rows, limit=40)
    assert [c.names for c in out] == [["a", "b"], ["c"], ["d"]]
    assert out[1].shapes == [[100]] and out[2].dtypes == ["bfloat16"]
    assert [c.names for c in chunks(rows, limit=1 << 20)] == [["a", "b", "c", "d"]]


def test_update_refuses_lists_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        PushUpdate(["a", "b"], ["float32"], [[1], [2]])


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_bytes_round_trip_exactly(dtype: str) -> None:
    tensor = torch.randn(3, 5).to(getattr(torch, dtype))[:, 1:4]  # not contiguous
    data = as_bytes(tensor)
    assert data.dtype == torch.uint8 and data.numel() == tensor.numel() * tensor.element_size()
    assert torch.equal(from_bytes(data, dtype, list(tensor.shape)), tensor)
