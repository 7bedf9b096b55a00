"""Placement: the Ray options each role declares and the settings that set them (the bounded wait for an
actor no node can take is tested on a real Ray in tests/integration/server/test_placement_wait.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from maskdpo.server.settings import ServerSettings, load_settings
from maskdpo.server.workers import placement
from maskdpo.server.workers.placement import GIB, GpuSharing, Placement


@pytest.mark.parametrize("cluster_gpus, expected", [(0.0, 0.0), (8.0, 2.0)])
def test_unset_gpus_follow_the_cluster(monkeypatch: pytest.MonkeyPatch, cluster_gpus: float,
                                       expected: float) -> None:
    monkeypatch.setattr(placement, "cluster_gpus", lambda: cluster_gpus)
    no_gpu = {"runtime_env": placement.NO_GPU} if not expected else {}  # an actor without a GPU sees none
    assert Placement(num_cpus=2).ray_options(auto_gpus=2) == {"num_cpus": 2, "num_gpus": expected, **no_gpu}


def test_explicit_placement_becomes_ray_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(placement, "cluster_gpus", lambda: 4.0)
    options = Placement(1, 0.5, 3.0, {"maskdpo-trainer": 1}).ray_options()
    assert options == {"num_cpus": 1, "num_gpus": 0.5, "memory": 3 * GIB, "resources": {"maskdpo-trainer": 1}}


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKDPO_TRAINER_RESOURCES", '{"maskdpo-trainer": 1}')
    monkeypatch.setenv("MASKDPO_JUDGE_RESOURCES", '{"maskdpo-judge": 0.25}')
    monkeypatch.setenv("MASKDPO_GENERATOR_MEMORY_GIB", "24")
    s = load_settings()
    assert s.trainer_placement(2).resources == {"maskdpo-trainer": 1} and s.trainer_placement(2).num_cpus == 2
    assert s.judge_placement("kb") == (Placement(0.0, 0.0, None, {"maskdpo-judge": 0.25}), 0.0)
    assert s.judge_placement("llm") == (Placement(0.0, None, None, {"maskdpo-judge": 0.25}), 1.0)
    assert s.generator_placement.memory_gib == 24 and s.generator_placement.num_gpus is None


def test_alternate_sharing_puts_generator_and_trainer_on_half_a_gpu_each() -> None:
    s = ServerSettings(gpu_sharing=GpuSharing.ALTERNATE)
    assert s.generator_placement.num_gpus == 0.5 and s.trainer_placement(1).num_gpus == 0.5
    explicit = ServerSettings(gpu_sharing="alternate", trainer_num_gpus=1)
    assert explicit.trainer_placement(1).num_gpus == 1
    assert ServerSettings().generator_placement.num_gpus is None


def test_default_judges_hold_no_cpu_so_an_engine_and_a_trainer_fit_beside_them_on_two() -> None:
    s = ServerSettings()
    held = len(s.judges) * s.judge_placement("kb")[0].num_cpus + s.generator_placement.num_cpus + s.trainer_placement(1).num_cpus
    assert held <= 2


@pytest.mark.parametrize("values, message", [
    ({"trainer_resources": {"GPU": 1}}, "not a custom resource"),
    ({"judge_resources": {"maskdpo-judge": 0}}, "must be positive"),
    ({"gpu_sharing": "alternate", "generator_tensor_parallel_size": 2}, "must be 1"),
    ({"gpu_sharing": "sometimes"}, "gpu_sharing"),
])
def test_bad_placement_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServerSettings(**values)  # type: ignore[arg-type]
