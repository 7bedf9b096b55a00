"""Channel set-up shared by the sync and async clients: credentials, size caps, retry policy.

Retries happen only where they are safe: the methods the contract declares ``retry_safe`` (they read or
compute without side effects; ``maskdpo.v1.policies``) are retried on UNAVAILABLE with exponential back-off
(gRPC's built-in retry policy). Methods that create or change something are never retried by the SDK.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
from google.longrunning import operations_pb2_grpc

from maskdpo.v1 import alignment_pb2_grpc, factuality_pb2_grpc, generation_pb2_grpc, models_pb2_grpc, policies

DEFAULT_TARGET = "127.0.0.1:50051"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": m.containing_service.full_name, "method": m.name}
                 for m in policies.retry_safe_methods()],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "3s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", SERVICE_CONFIG),
    ]


def credentials(tls: bool, root_ca: Path | None, client_cert: Path | None,
                client_key: Path | None) -> grpc.ChannelCredentials | None:
    """TLS credentials, or None for a plain-text channel. ``root_ca`` (PEM) replaces the system's trusted
    CAs; ``client_cert`` and ``client_key`` (PEM, both or neither) are presented for mutual TLS. Giving any
    of the three implies TLS."""
    if (client_cert is None) != (client_key is None):
        raise ValueError("client_cert and client_key go together (mutual TLS needs both)")
    if not tls and root_ca is None and client_cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_ca.read_bytes() if root_ca else None,
        private_key=client_key.read_bytes() if client_key else None,
        certificate_chain=client_cert.read_bytes() if client_cert else None,
    )


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class Connection:
    """What the sync and async clients share: the channel, the auth metadata, the default timeout and one
    stub per service (the channel is a ``grpc.Channel`` or a ``grpc.aio.Channel``)."""

    def __init__(self, channel: Any, token: str | None, timeout: float) -> None:
        self._channel = channel
        self._metadata = auth_metadata(token)
        self.timeout = timeout
        self.factuality = factuality_pb2_grpc.FactualityServiceStub(channel)
        self.generation = generation_pb2_grpc.GenerationServiceStub(channel)
        self.models = models_pb2_grpc.ModelServiceStub(channel)
        self.operations = operations_pb2_grpc.OperationsStub(channel)
        self.alignment = alignment_pb2_grpc.AlignmentServiceStub(channel)
