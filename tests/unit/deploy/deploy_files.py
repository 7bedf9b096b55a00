"""Reading the files under deploy/ the way their tools would: YAML documents, kustomizations with their
JSON patches, KubeRay's ``rayStartParams``, Dockerfile instructions, systemd environment files, and the
pins of requirements/dev.txt."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
SETTING_NAME = re.compile(r"\bMASKDPO_[A-Z][A-Z0-9_]*")

Doc = dict[str, Any]


# --- YAML and kustomize --------------------------------------------------------------------------------

def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_documents(path: Path) -> list[Any]:
    """Every non-empty document of ``path``; anchors expanded into independent copies (as kubectl does)."""
    with path.open() as fh:
        docs = [doc for doc in yaml.safe_load_all(fh) if doc is not None]
    return [json.loads(json.dumps(doc)) for doc in docs]


def kustomize(folder: Path) -> list[Doc]:
    """The resources a kustomization folder renders: its resources (files or folders, recursively), then its
    JSON 6902 patches applied to the documents their target selects."""
    kustomization = load_documents(folder / "kustomization.yaml")[0]
    docs: list[Doc] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        docs += kustomize(path) if path.is_dir() else load_documents(path)
    for patch in kustomization.get("patches", []):
        ops = load_documents(folder / patch["path"])[0]
        targets = [d for d in docs if _selected(d, patch["target"])]
        assert targets, f"{folder.name}: patch {patch['path']} selects no resource"
        for doc in targets:
            json_patch(doc, ops)
    return docs


def _selected(doc: Doc, target: dict[str, str]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": doc["kind"], "name": doc["metadata"]["name"]}
    return all(actual[key] == value for key, value in target.items())


def json_patch(doc: Any, ops: list[dict[str, Any]]) -> None:
    """Apply RFC 6902 ``add`` / ``replace`` / ``remove`` operations in place; a path that does not exist
    raises (as kustomize refuses the patch)."""
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "add":
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                node[last] = copy.deepcopy(op["value"])
        elif op["op"] == "replace":
            index: Any = int(last) if isinstance(node, list) else last
            if index not in (range(len(node)) if isinstance(node, list) else node):
                raise KeyError(f"replace: {op['path']} does not exist")
            node[index] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise ValueError(f"unsupported patch op {op['op']!r}")


def one(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# --- RayCluster ----------------------------------------------------------------------------------------

def pod_specs(cluster: Doc) -> dict[str, Doc]:
    """Pod spec of the head (key "head") and of every worker group (by group name)."""
    specs = {"head": cluster["spec"]["headGroupSpec"]["template"]["spec"]}
    for group in cluster["spec"].get("workerGroupSpecs", []):
        specs[group["groupName"]] = group["template"]["spec"]
    return specs


def ray_container(pod: Doc) -> Doc:
    """KubeRay's Ray container is the first one."""
    container: Doc = pod["containers"][0]
    return container


def env_of(container: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in container.get("env", [])}


def literal_env(container: Doc) -> dict[str, str]:
    return {name: item["value"] for name, item in env_of(container).items() if "value" in item}


def custom_resources(ray_start_params: Doc) -> dict[str, float]:
    """KubeRay's ``resources`` start parameter: a JSON object inside a quoted string."""
    raw = ray_start_params.get("resources")
    if raw is None:
        return {}
    # The shell that runs `ray start --resources=<value>` removes one level of double quotes, which for
    # this value is the same as reading it as a JSON string.
    text = json.loads(raw) if raw.strip().startswith('"') else raw
    value = json.loads(text)
    return {str(name): float(amount) for name, amount in value.items()}


def serve_argv(script: str) -> list[str]:
    """The arguments after ``maskdpo serve`` in a shell script (the one line that runs it)."""
    lines = [line for line in script.splitlines() if re.search(r"\bmaskdpo serve\b", line)
             and not line.lstrip().startswith("#")]
    assert len(lines) == 1, f"expected one line running `maskdpo serve`, got {lines}"
    words = shlex.split(lines[0])
    start = [i for i in range(len(words) - 1) if words[i].endswith("maskdpo") and words[i + 1] == "serve"]
    return words[start[0] + 2:]


# --- Dockerfiles, environment files, pins --------------------------------------------------------------

def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, arguments = (pending + line).partition(" ")
        out.append((instruction.upper(), arguments.strip()))
        pending = ""
    return out


def shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell line joined by ``&&``, ``||`` or ``;``, each split into words."""
    return [shlex.split(part) for part in re.split(r"&&|\|\||;", script) if part.strip()]


def pip_installs(script: str) -> list[list[str]]:
    """The words after ``pip install`` of every pip install command in ``script``."""
    found = []
    for words in shell_commands(script):
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                found.append(words[i + 2:])
    return found


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads them (one pair of single quotes around a value is removed)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value
    return values


def dev_pins() -> dict[str, str]:
    """requirements/dev.txt: package name (lower case, no extras) -> pinned version."""
    pins = {}
    for line in (ROOT / "requirements" / "dev.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(3)
    return pins


def requirement_pin(words: list[str], package: str) -> str | None:
    """The version ``package==X`` pins among pip's arguments (None when it is not there)."""
    for word in words:
        match = re.fullmatch(rf"{re.escape(package)}==(\S+)", word, flags=re.IGNORECASE)
        if match:
            return match.group(1)
    return None
