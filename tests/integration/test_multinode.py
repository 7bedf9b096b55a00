"""Several Ray nodes on one machine: a head (the server's node), and worker nodes for the judges, the
generator and the trainer, each offering its own custom resource, like the node groups of a KubeRay cluster.
``maskdpo serve --ray-address`` joins the cluster with the actors pinned to those groups.

A round runs with its generator, judge and trainer on three different nodes (the round's events name the
nodes; the test checks each one's resources). Killing the trainer's node in the middle of TRAIN loses the
Trainer actor: the round runs TRAIN again from its last checkpoint once a replacement node offers the
trainer resource. With no replacement the round ends FAILED once no node has taken the new Trainer actor
within the placement timeout -- never a hung round (that case runs at full size, ``make reliability``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from maskdpo.client import Client, round_of
from maskdpo.server.launcher import ServerProcess
from maskdpo.v1 import alignment_pb2
from tests.helpers.ray_cluster import LocalRayCluster, RayNode
from tests.integration.test_rounds import TOY_MODEL, small, wait_for

pytestmark = pytest.mark.reliability

P = alignment_pb2.RoundPhase
State = alignment_pb2.AlignmentRound.State
PLACEMENT_TIMEOUT_S = 45
ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "MASKDPO_GENERATOR_MAX_NUM_SEQS": "16",
    "MASKDPO_DRAIN_SECONDS": "2",
    "MASKDPO_ROUNDS_SAVE_STEPS": "4",
    "MASKDPO_GENERATOR_RESOURCES": '{"maskdpo-generator": 1}',
    "MASKDPO_JUDGE_RESOURCES": '{"maskdpo-judge": 1}',
    "MASKDPO_TRAINER_RESOURCES": '{"maskdpo-trainer": 1}',
    "MASKDPO_PLACEMENT_TIMEOUT_S": str(PLACEMENT_TIMEOUT_S),
}
NODE = re.compile(r"(?:on|at) node ([0-9a-f]{16,})")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not (TOY_MODEL / "config.json").is_file():
        pytest.skip("toyworld/model is not built (python -m maskdpo.toyworld.train_model)")
    root = tmp_path_factory.mktemp("multinode")
    with LocalRayCluster(root) as ray_cluster:
        ray_cluster.start_head(num_cpus=0)  # the server and the round controller: no work of their own
        nodes = {
            "judge": ray_cluster.add_node("judge", 2, {"maskdpo-judge": 4}),
            "generator": ray_cluster.add_node("generator", 1, {"maskdpo-generator": 1}),
            "trainer": ray_cluster.add_node("trainer", 1, {"maskdpo-trainer": 1}),
        }
        args = ["--judge", "kb", "--default-judge", "kb", "--model", f"toy={TOY_MODEL}",
                "--ray-address", ray_cluster.address]
        with ServerProcess.start(root / "server", args, ENV, timeout=300) as server:
            server.wait_serving(timeout=600)
            yield {"ray": ray_cluster, "nodes": nodes, "server": server}


@pytest.fixture
def client(cluster: dict[str, Any]) -> Iterator[Client]:
    with Client(cluster["server"].target, timeout=120) as c:
        yield c


def node_resources(address: str) -> dict[str, dict[str, Any]]:
    """Node id -> {"alive": bool, "resources": {...}} as the cluster's GCS sees it."""
    import ray

    ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        return {n["NodeID"]: {"alive": n["Alive"], "resources": n["Resources"]} for n in ray.nodes()}
    finally:
        ray.shutdown()


def nodes_named(events: list[alignment_pb2.RoundEvent], words: str) -> list[str]:
    return [m.group(1) for e in events if words in e.message and (m := NODE.search(e.message))]


def finish(client: Client, name: str, timeout: float) -> tuple[alignment_pb2.AlignmentRound, list[Any]]:
    deadline = time.monotonic() + timeout
    while client.get_round(name).state not in (State.SUCCEEDED, State.FAILED, State.CANCELLED):
        assert time.monotonic() < deadline, f"{name} did not end within {timeout} s"
        time.sleep(1)
    return client.get_round(name), list(client.watch_round(name))


def kill_during_train(cluster: dict[str, Any], client: Client, name: str, node: RayNode) -> None:
    wait_for(client, name, lambda e: e.kind == "PROGRESS" and e.phase == P.TRAIN and e.progress_done >= 6)
    cluster["ray"].kill(node)


def test_round_on_three_nodes_survives_losing_the_trainer_node(cluster: dict[str, Any], client: Client) -> None:
    name = round_of(client.create_round(small(promote=True, steps=80, seed=5)))
    kill_during_train(cluster, client, name, cluster["nodes"]["trainer"])
    time.sleep(3)  # the node group brings up a new machine
    cluster["nodes"]["trainer"] = cluster["ray"].add_node("trainer2", 1, {"maskdpo-trainer": 1})
    r, events = finish(client, name, timeout=600)
    messages = [e.message for e in events]
    assert r.state == State.SUCCEEDED, (r.reason, messages)
    assert any("lost a worker during TRAIN" in m for m in messages), messages
    assert any("TRAIN started (attempt 2" in m for m in messages), messages
    assert any("resumed from checkpoint step" in m for m in messages), messages
    assert [e.phase for e in events if e.kind == "PHASE_STARTED"].count(P.SAMPLE) == 1

    nodes = node_resources(cluster["ray"].address)
    generator, judge, trainers = (nodes_named(events, "sampling"), nodes_named(events, "judge "),
                                  nodes_named(events, "trainer runs"))
    assert generator and "maskdpo-generator" in nodes[generator[0]]["resources"]
    assert judge and "maskdpo-judge" in nodes[judge[0]]["resources"]
    assert len(trainers) == 2 and trainers[0] != trainers[1]
    assert not nodes[trainers[0]]["alive"] and nodes[trainers[1]]["alive"]
    assert "maskdpo-trainer" in nodes[trainers[1]]["resources"]  # a dead node's resources read as none
    assert len({generator[0], judge[0], trainers[0]}) == 3
    assert nodes_named(events, "started engine") == [trainers[1]]  # EVALUATE's engine on the candidate: where TRAIN ran
    served = client.generate("Tell me a bio of Ada Lind.", model="toy").samples[0].weight_version
    assert served == r.promoted_weight_version


@pytest.mark.skipif(os.environ.get("MASKDPO_RELIABILITY", "").lower() != "full",
                    reason="full size only (make reliability): one more round and a placement timeout")
def test_a_lost_node_with_no_replacement_fails_the_round_cleanly(cluster: dict[str, Any], client: Client) -> None:
    name = round_of(client.create_round(small(promote=True, steps=80, seed=6)))
    kill_during_train(cluster, client, name, cluster["nodes"]["trainer"])
    killed = time.monotonic()
    r, events = finish(client, name, timeout=PLACEMENT_TIMEOUT_S + 120)
    assert r.state == State.FAILED, r.reason
    assert "no node of the Ray cluster took the trainer" in r.reason and "maskdpo-trainer" in r.reason
    assert time.monotonic() - killed < PLACEMENT_TIMEOUT_S + 120
    assert any("lost a worker during TRAIN" in e.message for e in events)
    assert client.health("maskdpo.v1.GenerationService") == "SERVING"  # the rest of the service is unharmed
