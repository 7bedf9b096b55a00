"""Render the toy-world experiment's summary as Markdown (tables + interpretation) and a PNG plot, and write
the report folder. The figures come from ``experiment_report``, which imports nothing from here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from maskdpo.toyworld.experiment_report import BY_ATTRIBUTE, LABELS, METHODS, SHOWN, TARGET
from maskdpo.toyworld.world import ATTRIBUTES

PAIRS = (("maskdpo-dpo", "Mask-DPO − DPO"), ("dpo-base", "DPO − base"), ("maskdpo-base", "Mask-DPO − base"))
DELTAS = (
    ("anah_score", "ANAH", True),
    ("correct_per_answer", "correct / ans", False),
    ("incorrect_per_answer", "incorrect / ans", False),
    ("nofact_per_answer", "fact-free / ans", False),
    ("correct_facts_per_answer", "correct facts / ans", False),
    ("mean_length", "length (chars)", False),
    ("factscore", "FActScore", True),
    ("f1_at_k", "F1@K", True),
)
SPLIT_NAMES = {"heldout": "held-out", "validation": "validation", "alignment": "alignment"}


def _v(x: float | None, pct: bool, digits: int = 1) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.{digits}f}" if pct else f"{x:.2f}"


def _cell(stat: Mapping[str, float | None], pct: bool) -> str:
    text = _v(stat["value"], pct)
    if stat.get("low") is not None:
        text += f" [{_v(stat['low'], pct)}, {_v(stat['high'], pct)}]"
    return text


def _method_table(sub: Mapping[str, Any], bold: str = "anah_score") -> list[str]:
    head = "| method | " + " | ".join(label for _, label, _ in SHOWN) + " |"
    rows = [head, "|---" * (len(SHOWN) + 1) + "|"]
    for m in METHODS:
        cells = []
        for key, _, pct in SHOWN:
            cell = _cell(sub[m][key], pct)
            cells.append(f"**{cell}**" if key == bold else cell)
        rows.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
    return rows


def _paired_table(paired: Mapping[str, Any]) -> list[str]:
    rows = [
        "| comparison | " + " | ".join(label for _, label, _ in DELTAS) + " |",
        "|---" * (len(DELTAS) + 1) + "|",
    ]
    for key, label in PAIRS:
        cells = []
        for metric, _, pct in DELTAS:
            c = paired[key][metric]
            if c["delta"] is None:
                cells.append("–")
                continue
            sign = "+" if c["delta"] >= 0 else ""
            cells.append(
                f"{sign}{_v(c['delta'], pct)} [{_v(c['low'], pct)}, {_v(c['high'], pct)}] p={c['p']:.3f}"
            )
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return rows


def _breakdown_table(subgroups: Mapping[str, Any]) -> list[str]:
    keys = (
        ("anah_score", True),
        ("correct_per_answer", False),
        ("incorrect_per_answer", False),
        ("nofact_per_answer", False),
        ("correct_facts_per_answer", False),
        ("mean_length", False),
    )
    rows = [
        "| people | method | ANAH | correct / ans | incorrect / ans | fact-free / ans | correct facts / ans | length |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sub in ("near", "far", "frequent", "medium", "rare"):
        if sub not in subgroups:
            continue
        for m in METHODS:
            s = subgroups[sub][m]
            cells = [_cell(s[keys[0][0]], True)] + [_v(s[k]["value"], p) for k, p in keys[1:]]
            rows.append(f"| {sub} | {LABELS[m]} | " + " | ".join(cells) + " |")
    return rows


def _interpretation(summary: Mapping[str, Any]) -> list[str]:
    v = summary["verdict"]
    split = SPLIT_NAMES[v["split"]]
    g = summary["analysis"][v["split"]]
    a = {m: 100 * x for m, x in v["anah"].items()}
    lines = [
        f"- ANAH score on {split} people (pooled over seeds): base {a['base']:.1f} %, DPO {a['dpo']:.1f} %, "
        f"Mask-DPO {a['maskdpo']:.1f} %; ordering Mask-DPO > DPO > base by point estimates: "
        f"**{'yes' if v['ordering_point_estimates'] else 'no'}**.",
    ]
    for key, label in PAIRS:
        res = v[key]
        d = g["paired"][key]
        tail = "**yes**" if res["honest_win"] else "**no** (" + "; ".join(res["why_not"]) + ")"
        lines.append(
            f"- {label}: ANAH {100 * d['anah_score']['delta']:+.1f} points, correct sentences per answer "
            f"{d['correct_per_answer']['delta']:+.2f}, correct facts per answer "
            f"{d['correct_facts_per_answer']['delta']:+.2f}, fact-free per answer {d['nofact_per_answer']['delta']:+.2f}, "
            f"length {d['mean_length']['delta']:+.0f} chars, FActScore {100 * d['factscore']['delta']:+.1f}; "
            f"an honest win: {tail}."
        )
    seeds = g["per_seed"]["base"].keys()
    wins = {
        (a, b): sum(g["per_seed"][a][x]["anah_score"] > g["per_seed"][b][x]["anah_score"] for x in seeds)
        for a, b in (("maskdpo", "dpo"), ("dpo", "base"), ("maskdpo", "base"))
    }
    lines.append(
        f"- Per seed (ANAH): Mask-DPO above DPO in {wins['maskdpo', 'dpo']} of {len(seeds)} seeds, DPO above "
        f"base in {wins['dpo', 'base']}, Mask-DPO above base in {wins['maskdpo', 'base']}."
    )
    subs = g["subgroups"]
    if "near" in subs and "far" in subs:
        gains = {
            s: 100 * (subs[s]["maskdpo"]["anah_score"]["value"] - subs[s]["base"]["anah_score"]["value"])
            for s in ("near", "far")
        }
        dgains = {
            s: 100 * (subs[s]["dpo"]["anah_score"]["value"] - subs[s]["base"]["anah_score"]["value"])
            for s in ("near", "far")
        }
        lines.append(
            f"- Near vs far: Mask-DPO changes ANAH by {gains['near']:+.1f} points on near people (family in the "
            f"alignment set) and {gains['far']:+.1f} on far ones; DPO by {dgains['near']:+.1f} / "
            f"{dgains['far']:+.1f}."
        )
    lines.append(
        f"- The paper's claim (Mask-DPO > DPO > base on unseen people, every gain honest): "
        f"**{'reproduced' if v['claim_holds'] else 'not reproduced'}** in this run."
    )
    t = v["target"]
    missed = [TARGET[k] for k in TARGET if not t[k]]
    lines.append(
        "- Target (" + "; ".join(TARGET.values()) + "): **"
        + ("met" if t["met"] else "not met") + "**" + (" -- missed: " + "; ".join(missed) if missed else "") + "."
    )
    return lines


def markdown(summary: Mapping[str, Any]) -> str:
    c, t = summary["config"], summary["timing"]
    split = c["split"]
    seeds = " ".join(str(s) for s in c["seeds"])
    g = summary["analysis"][split]
    n_seeds = len(c["seeds"])
    cmd = (
        f"python -m maskdpo.toyworld.experiment --seeds {seeds} --samples-per-prompt {c['samples_per_prompt']} "
        f"--nofact-rule {c['nofact_rule']} --questions-per-person {c['questions_per_person']} --split {split}"
        + (f" --people {c['people']}" if c["people"] else "")
        + f" --beta {c['beta']} --lr {c['learning_rate']} --steps {c['steps']} --batch-size {c['batch_size']}"
        + f" --min-margin {c['min_margin']} --pair-rule {c.get('pair_rule', 'precision')}"
        + f" --end-of-turn {c['end_of_turn']} --mask-unit {c['mask_unit']} --nll-alpha {c['nll_alpha']}"
        + (" --anchor-dpo" if c["anchor_dpo"] else "")
        + f" --gamma {c['gamma']}"
        + (f" --fresh-world {summary['fresh_world']['world_seed']}" if "fresh_world" in summary else "")
    )
    out = [
        "# Toy-world experiment: base vs DPO vs Mask-DPO",
        "",
        f"`{cmd}`",
        "",
        f"Time: {t['wall_s'] / 60:.1f} min wall clock, {t['cpu_s'] / 60:.1f} min CPU time (this process and its "
        f"finished children; the vLLM engine processes included). Phases (wall s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in t["phases_wall_s"].items())
        + ".",
        "",
        "## Interpretation",
        "",
        *_interpretation(summary),
        "",
        "A gain counts as honest only when the paired 95 % CI of the ANAH gain excludes 0 and the method does "
        "not state significantly fewer correct facts or significantly more fact-free sentences per answer "
        "(paired CIs). FActScore with its length penalty stands next to it but is no criterion: the penalty "
        "also punishes leaving out a wrong sentence.",
        "",
        f"## {SPLIT_NAMES[split].capitalize()} people ({g['people']} people × {n_seeds} seeds, greedy)",
        "",
        "Pooled over seeds, 95 % bootstrap CI over people in brackets; percentages for ANAH, FActScore and "
        f"answers with a fact. ANAH = correct / (correct + incorrect) sentences; ANAH (all sent.) = 1 − "
        f"incorrect / all sentences (the released code's convention); FActScore = precision × length penalty "
        f"exp(1 − γ/n) for n < γ = {c['gamma']:g} facts, over the atomic facts (claims) the kb judge checks "
        "(a combined sentence such as 'X is a lawyer at Y.' states two); F1@K = harmonic mean of that precision "
        f"and recall min(correct facts / K, 1), K = {g['f1_k']:g} (the base model's median facts per answer). "
        "Sentence counts are per answer; 'correct facts / ans' counts supported claims.",
        "",
        *_method_table(g["subgroups"]["all"]),
        "",
        "![plot](report.png)",
        "",
        "### Paired differences (same people, paired bootstrap)",
        "",
        *_paired_table(g["paired"]),
        "",
        "### Near vs far, by popularity",
        "",
        *_breakdown_table(g["subgroups"]),
        "",
        "### Correct facts per answer, by attribute",
        "",
        *_attribute_table(g),
        "",
    ]
    if "alignment" in summary["analysis"]:
        a = summary["analysis"]["alignment"]
        out += [
            f"## Alignment people ({a['people']} people × {n_seeds} seeds, greedy)",
            "",
            *_method_table(a["subgroups"]["all"]),
            "",
        ]
    out += [
        "## Per seed",
        "",
        f"| seed | method | ANAH {SPLIT_NAMES[split]} | correct / ans | incorrect / ans | fact-free / ans "
        "| correct facts / ans | pairs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed in c["seeds"]:
        info = summary["seeds"][str(seed)]
        for m in METHODS:
            s = g["per_seed"][m][seed]
            pairs = info["pairs"]["pairs"] if m != "base" else "–"
            out.append(
                f"| {seed} | {LABELS[m]} | {_v(s['anah_score'], True)} | {_v(s['correct_per_answer'], False)} | "
                f"{_v(s['incorrect_per_answer'], False)} | {_v(s['nofact_per_answer'], False)} | "
                f"{_v(s['correct_facts_per_answer'], False)} | {pairs} |"
            )
    out += ["", "## Training data", ""]
    for seed in c["seeds"]:
        info = summary["seeds"][str(seed)]
        p, smp = info["pairs"], info["samples"]
        kept = info["train"]["maskdpo"]["kept_fraction"]
        logs = {m: info["train"][m]["last_log"] for m in ("dpo", "maskdpo")}
        out.append(
            f"- seed {seed}: {smp['samples']} samples ({smp['ok']} correct, {smp['incorrect']} incorrect, "
            f"{smp['nofact']} fact-free sentences); {p['pairs']} pairs from {p['prompts']} prompts, dropped "
            f"{p['dropped'] or 'none'}, degenerate kept {p['degenerate_kept']}; Mask-DPO keeps "
            f"{100 * kept['chosen']:.0f} % of chosen and {100 * kept['rejected']:.0f} % of rejected tokens (DPO "
            f"100 %); last step loss DPO {logs['dpo'].get('loss', float('nan')):.3f}, Mask-DPO "
            f"{logs['maskdpo'].get('loss', float('nan')):.3f}."
        )
    out += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in c.items() if k != "seeds"), ""]
    if "fresh_world" in summary:
        out += _fresh_world(summary["fresh_world"])
    return "\n".join(out)


def _attribute_table(g: Mapping[str, Any]) -> list[str]:
    rows = [
        "| attribute | base | DPO | Mask-DPO | DPO − base | Mask-DPO − base |",
        "|---|---|---|---|---|---|",
    ]
    for attribute in ATTRIBUTES:
        key = BY_ATTRIBUTE + attribute
        cells = [_v(g["subgroups"]["all"][m][key]["value"], False) for m in METHODS]
        for pair in ("dpo-base", "maskdpo-base"):
            d = g["paired"][pair][key]
            cells.append(f"{d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]")
        rows.append(f"| {attribute} | " + " | ".join(cells) + " |")
    return rows


def _fresh_world(fresh: Mapping[str, Any]) -> list[str]:
    c, t = fresh["config"], fresh["timing"]
    g = fresh["analysis"][c["split"]]
    trained = fresh["model_train_s"]
    return [
        f"## A world never used for tuning (world seed {fresh['world_seed']})",
        "",
        f"The same settings on a world generated from seed {fresh['world_seed']}, with its own model trained "
        f"by `python -m maskdpo.toyworld.train_model --seed {fresh['world_seed']}` ("
        + (f"{trained / 60:.1f} min" if trained else "reused from an earlier run")
        + f"; `{c['model']}`). Time: {t['wall_s'] / 60:.1f} min wall clock.",
        "",
        *_interpretation(fresh),
        "",
        f"### {SPLIT_NAMES[c['split']].capitalize()} people ({g['people']} people × {len(c['seeds'])} seeds)",
        "",
        *_method_table(g["subgroups"]["all"]),
        "",
        *_paired_table(g["paired"]),
        "",
        *_breakdown_table(g["subgroups"]),
        "",
        *_attribute_table(g),
        "",
    ]


def plot(path: Path, analysis: Mapping[str, Any], split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = analysis[split]
    groups = [(split, "all"), (split, "near"), (split, "far"), (split, "rare")]
    if "alignment" in analysis:
        groups.append(("alignment", "all"))
    groups = [(s, sub) for s, sub in groups if sub in analysis[s]["subgroups"]]
    colors = {"base": "#999999", "dpo": "#4c72b0", "maskdpo": "#dd8452"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=80)
    width = 0.27
    for i, m in enumerate(METHODS):
        xs: list[float] = []
        ys: list[float] = []
        errs: list[list[float]] = [[], []]
        for j, (s, sub) in enumerate(groups):
            stat = analysis[s]["subgroups"][sub][m]["anah_score"]
            xs.append(j + (i - 1) * width)
            ys.append(100 * stat["value"])
            errs[0].append(
                100 * (stat["value"] - (stat["low"] if stat["low"] is not None else stat["value"]))
            )
            errs[1].append(
                100 * ((stat["high"] if stat["high"] is not None else stat["value"]) - stat["value"])
            )
        left.bar(xs, ys, width, yerr=errs, capsize=2, color=colors[m], label=LABELS[m])
    left.set_xticks(range(len(groups)))
    left.set_xticklabels([f"{SPLIT_NAMES[s]}\n{sub}" for s, sub in groups], fontsize=8)
    left.set_ylabel("ANAH score (%)")
    left.set_title("ANAH score, 95 % CI")
    left.legend(fontsize=8)
    lows = [
        100 * analysis[s]["subgroups"][sub][m]["anah_score"]["value"] for s, sub in groups for m in METHODS
    ]
    left.set_ylim(max(0, min(lows) - 15), min(100, max(lows) + 10))
    bottom = [0.0] * len(METHODS)
    for key, label, color in (
        ("correct_per_answer", "correct", "#55a868"),
        ("incorrect_per_answer", "incorrect", "#c44e52"),
        ("nofact_per_answer", "fact-free", "#cccccc"),
    ):
        vals = [g["subgroups"]["all"][m][key]["value"] for m in METHODS]
        right.bar([LABELS[m] for m in METHODS], vals, 0.5, bottom=bottom, color=color, label=label)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    right.set_ylim(0, max(bottom) * 1.3)
    right.set_ylabel("sentences per answer")
    right.set_title(f"{SPLIT_NAMES[split]} people: what the answers say")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(out: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary.json``, ``report.png`` and ``report.md`` of ``summary`` (``experiment_report``'s
    :func:`build_summary`) into ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, default=_num) + "\n")
    plot(out / "report.png", summary["analysis"], summary["config"]["split"])
    (out / "report.md").write_text(markdown(summary))
    return summary


def _num(value: object) -> object:
    if isinstance(value, np.floating | np.integer):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
