"""Tune the toy world and model on the VALIDATION people: train several configurations, report each.

Run ``python -m maskdpo.toyworld.sweep --device cuda '{"steps": 1500}' '{"model.layers": 2}'``. Each
argument is a JSON object of overrides of :class:`TrainConfig` (dotted keys reach ``world.``, ``corpus.``
and ``model.`` fields). Prints one JSON line per configuration: training time, final loss, and the
validation report (ANAH greedy, greedy / best-of-k per-answer score, sentences per answer by bucket).
Held-out people are never looked at here.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from maskdpo.toyworld.evaluate import evaluate_model
from maskdpo.toyworld.train_model import TrainConfig, train, with_overrides
from maskdpo.toyworld.world import World

_KEYS = (
    "anah_greedy",
    "greedy_mean_score",
    "best_of_k_score",
    "ok_per_answer",
    "incorrect_per_answer",
    "nofact_per_answer",
)


def run_one(overrides: dict[str, Any], device: str, k: int) -> dict[str, Any]:
    config = with_overrides(TrainConfig(), overrides)
    model, tokenizer, info = train(config, None, log=False, device=device)
    started = time.time()
    world = World.generate(config.world)
    report = evaluate_model(model, tokenizer, world, "validation", k=k)
    summary = {
        group: {key: report[group][key] for key in _KEYS}
        for group in ("all", "frequent", "medium", "rare", "near", "far")
        if group in report
    }
    return {
        "overrides": overrides,
        "train_seconds": info["train_seconds"],
        "eval_seconds": round(time.time() - started, 1),
        "final_loss": info["losses"][-1] if info["losses"] else None,
        "epochs": round(float(info["epochs"]), 2),
        "validation": summary,
        "example": report["examples"][0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", default=["{}"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--k", type=int, default=6)
    args = parser.parse_args(argv)
    for raw in args.configs:
        print(json.dumps(run_one(json.loads(raw), args.device, args.k)), flush=True)


if __name__ == "__main__":
    main()
