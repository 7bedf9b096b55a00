"""Settings of alignment rounds, read from ``MASKDPO_ROUNDS_*`` environment variables.

| Variable | Default | Meaning |
| --- | --- | --- |
| ``MASKDPO_ROUNDS_ENABLED`` | true | serve AlignmentService (needs served models) |
| ``MASKDPO_ROUNDS_TRAINER_ON_RAY`` | true | train on a Trainer actor (GPU when the cluster has one); false = in the controller |
| ``MASKDPO_ROUNDS_TRAINER_CPUS`` | 1 | CPUs the Trainer actor reserves |
| ``MASKDPO_ROUNDS_SAVE_STEPS`` | 0 | trainer checkpoint interval (0 = a quarter of the round's steps) |
| ``MASKDPO_ROUNDS_PROMOTION_METRIC`` | anah_score | default promotion metric (``anah_score`` or ``factscore``) |
| ``MASKDPO_ROUNDS_MIN_IMPROVEMENT`` | 0.01 | default smallest metric gain to promote |
| ``MASKDPO_ROUNDS_MAX_CORRECT_DROP`` | 0.1 | default largest fall of correct sentences per answer (fraction) |
| ``MASKDPO_ROUNDS_DATASET_MODULES`` | [] | modules to import that register more prompt sets (JSON list) |
| ``MASKDPO_ROUNDS_MAX_ATTEMPTS`` | 3 | a phase started this many times without finishing ends the round FAILED |
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RoundSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MASKDPO_ROUNDS_", extra="forbid")

    enabled: bool = True
    trainer_on_ray: bool = True
    trainer_cpus: float = Field(1.0, ge=0)
    save_steps: int = Field(0, ge=0)
    promotion_metric: str = Field("anah_score", pattern="^(anah_score|factscore)$")
    min_improvement: float = Field(0.01, ge=-1, le=1)
    max_correct_drop: float = Field(0.1, ge=0, le=1)
    dataset_modules: list[str] = Field(default_factory=list)
    max_attempts: int = Field(3, ge=1)
