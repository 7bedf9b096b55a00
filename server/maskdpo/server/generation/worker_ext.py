"""Methods vLLM adds to every engine worker (``worker_extension_cls``), called with ``collective_rpc``.

``retie_word_embeddings``: models with tied input and output embeddings (``tie_word_embeddings``, e.g. the
toy-world model) share one matrix between ``embed_tokens`` and ``lm_head``. vLLM's in-place layer-wise
reload loads ``embed_tokens`` and finds no ``lm_head`` tensor in the checkpoint, so it puts the OLD output
matrix back: the engine would then embed with the new weights and predict with the old ones (the hot-swap
verification catches it: max |diff| 0.4 on the toy model). After a reload this re-ties ``lm_head`` to the
new embedding and redoes its post-load processing (on CPU that re-packs the GEMM weights).
"""

from __future__ import annotations

from typing import Any


class ReloadExtension:
    """Mixed into the engine's worker class by vLLM; ``self`` is the worker."""

    def retie_word_embeddings(self) -> bool:
        """Re-tie the output embedding to the input one; False when the model does not tie them."""
        model: Any = self.get_model()  # type: ignore[attr-defined]
        config = getattr(model, "config", None)
        lm_head = getattr(model, "lm_head", None)
        embed = getattr(getattr(model, "model", None), "embed_tokens", None)
        if not getattr(config, "tie_word_embeddings", False) or lm_head is None or embed is None:
            return False
        lm_head.tie_weights(embed)
        lm_head.quant_method.process_weights_after_loading(lm_head)
        return True
