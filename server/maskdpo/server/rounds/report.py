"""The per-round report: ``<data_dir>/rounds/<id>/report.md`` and ``report.png``.

The Markdown holds the configuration, the outcome and its reason, the before / after evaluation table,
the phases with their durations and attempts, the artifacts, and the factuality of every round of the same
model so far (newest last); the plot shows factuality before and after this round, and across rounds.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from maskdpo.server.store.layout import DataDir
from maskdpo.server.store.rounds import PREFIX, RoundStore, phase_name, state_name
from maskdpo.trainer import durable
from maskdpo.v1 import alignment_pb2

ROWS = (
    ("anah_score", "ANAH score"),
    ("factscore", "FActScore"),
    ("correct_per_answer", "correct / answer"),
    ("incorrect_per_answer", "incorrect / answer"),
    ("nofact_per_answer", "fact-free / answer"),
    ("mean_length", "mean length (chars)"),
    ("answers", "answers"),
)


def _value(e: alignment_pb2.Evaluation, name: str) -> str:
    if name in ("anah_score", "factscore") and not e.HasField(name):  # type: ignore[arg-type]
        return "-"
    value = getattr(e, name)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _history(store: RoundStore, model: str) -> list[tuple[str, float | None, float | None, bool]]:
    rounds, _ = store.page(0, model, 0, 1000)
    out = []
    for r in reversed(rounds):
        if r.HasField("after"):
            before = r.before.anah_score if r.before.HasField("anah_score") else None
            after = r.after.anah_score if r.after.HasField("anah_score") else None
            out.append((r.name.removeprefix(PREFIX)[:8], before, after, r.promoted))
    return out


def write_report(store: RoundStore, rid: str, data_dir: Path, reason: str, state: int) -> Path:
    root = DataDir(data_dir).round_folder(rid)
    root.mkdir(parents=True, exist_ok=True)
    r = store.get(rid)
    history = _history(store, r.config.model)
    plot = _plot(root / "report.png", r, history)
    lines = [
        f"# Alignment round {r.name}",
        "",
        f"- model: `{r.config.model}`; state: **{state_name(state)}**; "
        f"promoted: **{'yes' if r.promoted else 'no'}**"
        + (f" (served weight version {r.promoted_weight_version})" if r.promoted else ""),
        f"- started from weight version {r.start_weight_version}"
        + (f", round {r.config.start_from_round}" if r.config.start_from_round else ""),
        f"- reason: {reason}",
        f"- judge: {r.judge.backend or '-'} ({r.judge.knowledge_source or 'inline'}, splitter {r.judge.splitter})",
        f"- created {datetime.datetime.fromtimestamp(r.create_time.seconds, datetime.UTC):%Y-%m-%d %H:%M:%S} UTC",
        "",
        "## Evaluation (greedy, held-out prompts)",
        "",
        "| metric | before | after |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {label} | {_value(r.before, name)} | {_value(r.after, name)} |" for name, label in ROWS]
    lines += ["", "## Phases", "", "| phase | attempts | seconds |", "| --- | --- | --- |"]
    for p in store.phase_rows(rid):
        seconds = f"{p['finished'] - p['started']:.1f}" if p["finished"] else "unfinished"
        lines.append(f"| {phase_name(p['phase'])} | {p['attempts']} | {seconds} |")
    lines += [
        "",
        "## Rounds of this model",
        "",
        "| round | ANAH before | ANAH after | promoted |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {n} | {_f(b)} | {_f(a)} | {'yes' if p else 'no'} |" for n, b, a, p in history]
    lines += ["", "## Artifacts", ""] + [f"- {k}: `{v}`" for k, v in store.artifacts(rid).items()]
    if plot:
        lines += ["", f"![factuality]({plot.name})"]
    config: dict[str, Any] = json_format.MessageToDict(r.config)
    lines += ["", "## Configuration", "", "```json", json.dumps(config, indent=1), "```", ""]
    path = root / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    durable.replace_file(tmp, path)
    return path


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _plot(
    path: Path, r: alignment_pb2.AlignmentRound, history: list[tuple[str, float | None, float | None, bool]]
) -> Path | None:
    if not r.HasField("after"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = ["before", "after"]
    values = [
        r.before.anah_score if r.before.HasField("anah_score") else 0.0,
        r.after.anah_score if r.after.HasField("anah_score") else 0.0,
    ]
    left.bar(names, values, color=["#888888", "#2a7ab9"])
    left.set_ylim(0, 1)
    left.set_title("ANAH score, this round")
    xs = list(range(len(history)))
    right.plot(xs, [h[1] if h[1] is not None else float("nan") for h in history], "o--", label="before")
    right.plot(xs, [h[2] if h[2] is not None else float("nan") for h in history], "o-", label="after")
    right.set_xticks(xs, [h[0] for h in history], rotation=30, fontsize=7)
    right.set_ylim(0, 1)
    right.set_title("ANAH score across rounds")
    right.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    durable.replace_file(tmp, path)
    return path
