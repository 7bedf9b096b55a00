"""Push a trained model's weights into a running vLLM engine, without a round trip through the disk.

The engine side is vLLM's weight-transfer API -- ``init_weight_transfer_engine``, then per update
``start_weight_update``, ``update_weights`` (one call per chunk), ``finish_weight_update`` -- with the
:data:`BACKEND` backend the server registers in every engine process
(:mod:`maskdpo.server.generation.weight_receiver`). vLLM's own backends (nccl, CUDA IPC) need CUDA; this one
runs wherever torch's gloo does: the sender and each engine worker join one process group of their own
(rank 0 = the sender, which hosts its TCP store; worker ``r`` = rank ``1 + r``), and every tensor is broadcast
as raw bytes, then loaded by the engine's ``load_weights`` under its layer-wise reload (so CPU kernels repack
and tied embeddings are handled as on a reload from disk).

This module owns the wire: :class:`PushInit` and :class:`PushUpdate` are what the two sides exchange, and
:func:`push` is the sender. The engine is reached through a :class:`PushTarget` (the server's engine actor,
:mod:`maskdpo.server.workers.engine_push`, or an engine in this process in tests). Every process of a
sharded trainer calls :func:`push` (gathering a sharded tensor is a collective); only rank 0 talks to the
engine.
"""

from __future__ import annotations

import dataclasses
import datetime
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

BACKEND = "maskdpo-tcp"
"""The backend name both sides use (vLLM's ``WeightTransferConfig.backend``)."""
RENDEZVOUS_S = 60.0
"""How long the sender and the engine's workers wait for one another to join the group."""
CHUNK_BYTES = 256 << 20
"""Bytes announced per ``update_weights`` call (tensors are never split; a larger one is a chunk alone)."""


@dataclasses.dataclass
class PushInit:
    """``init_weight_transfer_engine``'s info: where the sender's store listens, and the group's size."""

    host: str
    port: int
    world_size: int
    timeout_s: float = 600.0


@dataclasses.dataclass
class PushUpdate:
    """One ``update_weights`` chunk: the tensors the sender broadcasts next, in this order."""

    names: list[str]
    dtypes: list[str]
    shapes: list[list[int]]

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.dtypes) == len(self.shapes):
            raise ValueError(f"names, dtypes and shapes differ in length: {len(self.names)}, "
                             f"{len(self.dtypes)}, {len(self.shapes)}")


STEPS = ("open", "start", "chunk", "finish")
"""An engine's steps of a push, in order (``chunk`` once per :class:`PushUpdate`): ``open`` with a
:class:`PushInit` joins the group, ``start`` closes admission and starts the reload, ``finish`` ends it."""


class PushTarget(Protocol):
    """The engine's side of a push."""

    def step(self, name: str, payload: dict[str, Any] | None = None) -> Callable[[], Any]:
        """Start the engine's part of step ``name`` (one of :data:`STEPS`; ``payload``: the step's
        :class:`PushInit` or :class:`PushUpdate` as a dict) and return a wait for it: the engine's part of a
        collective runs while the sender does its own."""
        ...

    def workers(self) -> int:
        """The engine's worker processes (its tensor-parallel size)."""
        ...


def as_bytes(tensor: Any) -> Any:
    """A contiguous CPU uint8 view of ``tensor``'s data (gloo moves bytes; bfloat16 needs no support)."""
    import torch

    return tensor.detach().to("cpu").contiguous().view(-1).view(dtype=torch.uint8)


def from_bytes(data: Any, dtype: str, shape: list[int]) -> Any:
    import torch

    return data.view(dtype=getattr(torch, dtype)).view(shape)


def group(host: str, port: int, rank: int, world_size: int, timeout_s: float) -> Any:
    """A gloo process group of its own (the default group, if any, is left alone)."""
    import torch.distributed as dist

    meet = datetime.timedelta(seconds=min(RENDEZVOUS_S, timeout_s))  # a peer that cannot connect fails soon
    store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=meet)  # type: ignore[attr-defined]
    timeout = datetime.timedelta(seconds=timeout_s)
    prefixed = dist.PrefixStore("maskdpo-push", store)  # type: ignore[attr-defined]
    return dist.ProcessGroupGloo(prefixed, rank, world_size, timeout)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def named_tensors(model: Any, dtype: str | None) -> Iterator[tuple[str, Any]]:
    """``(name, full tensor)`` for every parameter, in ``dtype`` (None: as trained); a sharded parameter is
    gathered (a collective: every process iterates alike)."""
    import torch

    for name, param in model.named_parameters():
        full = getattr(param, "full_tensor", None)
        tensor = full() if callable(full) else param
        yield name, tensor.detach().to(getattr(torch, dtype)) if dtype else tensor.detach()


def chunks(meta: list[tuple[str, str, list[int], int]], limit: int = CHUNK_BYTES) -> list[PushUpdate]:
    """Split ``(name, dtype, shape, nbytes)`` rows into updates of at most ``limit`` bytes each."""
    out: list[PushUpdate] = []
    size = 0
    for name, dtype, shape, nbytes in meta:
        if not out or size + nbytes > limit:
            out.append(PushUpdate([], [], []))
            size = 0
        out[-1].names.append(name)
        out[-1].dtypes.append(dtype)
        out[-1].shapes.append(shape)
        size += nbytes
    return out


def push(model: Any, target: PushTarget | None, *, rank: int = 0, dtype: str | None = None,
         host: str | None = None, timeout_s: float = 600.0) -> dict[str, float]:
    """Send every parameter of ``model`` (cast to ``dtype``) into the engine behind ``target``; rank 0
    sends, other ranks (``target`` None) only take part in gathering sharded tensors. Returns the bytes
    sent and the seconds taken (rank 0)."""
    import torch

    started = time.monotonic()
    if rank != 0:
        for _ in named_tensors(model, dtype):
            pass
        return {}
    assert target is not None, "rank 0 needs the engine to push to"
    host = host or socket.gethostbyname(socket.gethostname())
    init = PushInit(host, _free_port(host), 1 + target.workers(), timeout_s)
    joined = target.step("open", dataclasses.asdict(init))
    pg = group(init.host, init.port, 0, init.world_size, timeout_s)
    joined()
    with torch.no_grad():
        meta = []
        for name, t in model.named_parameters():
            wire = getattr(torch, dtype) if dtype else t.dtype
            meta.append((name, str(wire).removeprefix("torch."), list(t.shape), t.numel() * wire.itemsize))
        target.step("start")()
        sent = 0
        tensors = named_tensors(model, dtype)
        for chunk in chunks(meta):
            received = target.step("chunk", dataclasses.asdict(chunk))
            for expected in chunk.names:
                name, tensor = next(tensors)
                if name != expected:
                    raise RuntimeError(f"parameter order changed during the push: {name} != {expected}")
                data = as_bytes(tensor)
                pg.broadcast(data, 0).wait()
                sent += data.numel()
            received()
        target.step("finish")()
    return {"bytes": float(sent), "seconds": time.monotonic() - started}

