"""The engine's side of a weight push (:mod:`maskdpo.trainer.weight_push`): a vLLM weight-transfer backend.

vLLM builds one :class:`TcpReceiver` per engine worker when the engine starts with
``weight_transfer_config={"backend": BACKEND}`` (``EngineSettings.accept_pushed_weights``); :func:`register`
adds it to vLLM's backend registry in every engine process (a ``vllm.general_plugins`` entry point of this
distribution). A push then runs vLLM's own update lifecycle: the layer-wise reload starts, each chunk's
tensors arrive by broadcast from the sender and go through the model's ``load_weights`` (checkpoint names,
as on a reload from disk), and the reload is finalised (weights processed after loading: on CPU the GEMM
weights are repacked).
"""

from __future__ import annotations

from typing import Any

from maskdpo.trainer.weight_push import BACKEND, PushInit, PushUpdate, from_bytes, group


def _receiver_class() -> type:
    import torch
    from vllm.distributed.weight_transfer.base import WeightTransferEngine

    class TcpReceiver(WeightTransferEngine):  # type: ignore[type-arg]
        """Receives a push into this worker's model."""

        init_info_cls = PushInit
        update_info_cls = PushUpdate
        supports_draft_weight_update = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.group: Any = None

        def init_transfer_engine(self, init_info: PushInit) -> None:
            p = self.parallel_config
            rank = 1 + p.data_parallel_index * p.world_size + p.rank
            self.group = group(init_info.host, init_info.port, rank, init_info.world_size, init_info.timeout_s)

        def start_weight_update(self) -> None:
            from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

            initialize_layerwise_reload(self.model)

        def finish_weight_update(self) -> None:
            from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

            finalize_layerwise_reload(self.model, self.model_config)  # type: ignore[no-untyped-call]

        def update_weights(self, update_info: dict[str, Any]) -> None:
            self.receive_weights(self.parse_update_info(update_info))
            if self.device.type != "cpu":
                torch.accelerator.synchronize()

        def receive_weights(self, update_info: PushUpdate) -> None:
            if self.group is None:
                raise RuntimeError("no push was opened on this engine (init_weight_transfer_engine first)")
            model: Any = self.model
            for name, dtype, shape in zip(update_info.names, update_info.dtypes, update_info.shapes, strict=True):
                nbytes = int(torch.Size(shape).numel()) * getattr(torch, dtype).itemsize
                data = torch.empty(nbytes, dtype=torch.uint8)
                self.group.broadcast(data, 0).wait()
                model.load_weights([(name, from_bytes(data, dtype, shape).to(self.device))])

        def shutdown(self) -> None:
            self.group = None

    return TcpReceiver


def register() -> None:
    """Add :data:`BACKEND` to vLLM's weight-transfer registry (idempotent; vLLM calls it in each process)."""
    from vllm.distributed.weight_transfer.factory import WeightTransferEngineFactory

    if BACKEND not in WeightTransferEngineFactory._registry:
        WeightTransferEngineFactory.register_engine(BACKEND, _receiver_class())
