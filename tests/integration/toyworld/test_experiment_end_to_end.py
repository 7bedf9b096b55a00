"""A small toy-world experiment end to end: vLLM sampling, kb judging, pairs, DPO and Mask-DPO, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

from maskdpo.toyworld.experiment import ExperimentConfig, run_experiment


def test_small_experiment_end_to_end(tmp_path: Path) -> None:
    """vLLM sampling, kb judging, pairs, DPO and Mask-DPO training and greedy evaluation, in small."""
    config = ExperimentConfig(
        seeds=(0,),
        samples_per_prompt=3,
        people=12,
        eval_limit=12,
        steps=3,
        batch_size=4,
        resamples=50,
    )
    out, work = tmp_path / "out", tmp_path / "work"
    summary = run_experiment(config, out, work, log=lambda _m: None)
    report = (out / "report.md").read_text()
    assert all(row in report for row in ("| base |", "| DPO |", "| Mask-DPO |"))
    assert (out / "report.png").stat().st_size > 1000
    seed = summary["seeds"]["0"]
    assert seed["samples"]["samples"] == 12 * 3
    assert seed["pairs"]["pairs"] > 0
    train = seed["train"]
    assert train["dpo"]["pairs"] == train["maskdpo"]["pairs"] == seed["pairs"]["pairs"]
    assert train["dpo"]["kept_fraction"]["chosen"] == 1.0
    assert train["maskdpo"]["kept_fraction"]["chosen"] < 1.0  # the masks really differ
    run = work / "seed0"
    assert (run / "dpo" / "pairs.jsonl").read_text() == (run / "maskdpo" / "pairs.jsonl").read_text()
    for method in ("dpo", "maskdpo"):
        lines = (run / method / "greedy-heldout.jsonl").read_text().splitlines()
        assert len(lines) == 12 and all(json.loads(x)["answer"] for x in lines)
    assert len(summary["analysis"]["heldout"]["per_seed"]["maskdpo"]) == 1
    assert summary["timing"]["wall_s"] > 0 and "train" in summary["timing"]["phases_wall_s"]
