"""The per-round report: ``<data_dir>/rounds/<id>/report.md`` and ``report.png``.

The Markdown holds the configuration, the outcome and its reason, the evaluation table (the chain's start,
before, after), the promotion decision in words with the paired 95 % intervals it was decided on, the
phases with their durations and attempts, the artifacts, and the factuality of every round of the same
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
    ("f1_at_k", "F1@K"),
    ("correct_facts_per_answer", "correct facts / answer"),
    ("incorrect_facts_per_answer", "incorrect facts / answer"),
    ("correct_per_answer", "correct sentences / answer"),
    ("incorrect_per_answer", "incorrect sentences / answer"),
    ("nofact_per_answer", "fact-free sentences / answer"),
    ("mean_length", "mean length (chars)"),
    ("abstentions", "abstentions"),
    ("answers", "answers"),
)
DIFFERENCES = (*(r for r in ROWS if r[0] not in ("abstentions", "answers")), ("abstention_rate", "abstention rate"))
OUTCOMES = {
    alignment_pb2.PromotionDecision.OUTCOME_UNSPECIFIED: "not decided",
    alignment_pb2.PromotionDecision.PROMOTED: "promoted",
    alignment_pb2.PromotionDecision.REFUSED: "not promoted: refused",
    alignment_pb2.PromotionDecision.UNDECIDED: "not promoted: undecided (too few evaluation answers to tell)",
}


def _value(e: alignment_pb2.Evaluation, name: str) -> str:
    if alignment_pb2.Evaluation.DESCRIPTOR.fields_by_name[name].has_presence and not e.HasField(name):  # type: ignore[arg-type]
        return "-"
    value = getattr(e, name)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _difference(d: alignment_pb2.PairedDifference | None) -> list[str]:
    if d is None:
        return ["-"] * 4
    bounds = (d.interval.low, d.interval.high) if d.HasField("interval") else (None, None)
    fmt = [f"{x:+.4f}" if x is not None else "-" for x in (d.delta if d.HasField("delta") else None, *bounds)]
    values = [f"{getattr(d, f):.4f}" if d.HasField(f) else "-" for f in ("baseline", "candidate")]
    p = f"{d.p_value:.3f}" if d.HasField("p_value") else "-"
    return [*values, f"{fmt[0]} [{fmt[1]}, {fmt[2]}]", p]


def _decision(r: alignment_pb2.AlignmentRound) -> list[str]:
    d = r.decision
    if not d.versus_start:
        return []
    rule = d.rule
    lines = [
        "## Promotion decision",
        "",
        f"**{OUTCOMES[d.outcome]}**. Rule: the lower end of the {100 * d.level:.0f} % paired interval of the "
        f"{rule.metric} gain over the round's start must reach {rule.min_improvement:+.4f}, and correct facts "
        f"per answer must not fall significantly against the chain's start ({d.chain_round}; tolerated: "
        f"{100 * rule.max_correct_drop:.0f} % of its value); paired bootstrap, {d.resamples} resamples of the "
        f"{r.after.answers} evaluation answers.",
        "",
        *[f"- {f}" for f in d.findings],
    ]
    tables = [("the round's start", d.versus_start)]
    if r.config.start_from_round:
        tables.append(("the chain's start", d.versus_chain_start))
    for title, diffs in tables:
        by_metric = {x.metric: x for x in diffs}
        lines += [
            "",
            f"Candidate against {title}:",
            "",
            "| metric | baseline | candidate | change [95 % interval] | p |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [f"| {label} | " + " | ".join(_difference(by_metric.get(name))) + " |" for name, label in DIFFERENCES]
    return [*lines, ""]


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
    ]
    sides = [("chain start", r.chain_start)] if r.config.start_from_round and r.HasField("chain_start") else []
    sides += [("before", r.before), ("after", r.after)]
    lines += ["| metric | " + " | ".join(n for n, _ in sides) + " |", "| --- |" + " --- |" * len(sides)]
    lines += [f"| {label} | " + " | ".join(_value(e, name) for _, e in sides) + " |" for name, label in ROWS]
    lines += ["", *_decision(r)]
    lines += ["## Phases", "", "| phase | attempts | seconds |", "| --- | --- | --- |"]
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
