"""The toy-world experiment: prompt selection, metrics and verdict rules (a small experiment runs in
tests/integration/toyworld/test_experiment_end_to_end.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.toyworld import bio_templates as T
from maskdpo.toyworld.corpus import person_values
from maskdpo.toyworld.experiment import (
    ExperimentConfig,
    alignment_people,
    alignment_prompts,
    parse_args,
)
from maskdpo.toyworld.experiment_markdown import write_report
from maskdpo.toyworld.experiment_report import EvalRecord, analyse, build_summary, honest_win, verdict
from maskdpo.toyworld.train_model import DEFAULT_OUT
from maskdpo.toyworld.world import BUCKETS, Person, World, WorldConfig
from maskdpo.toyworld.world_judge import WorldLabeler


@pytest.fixture(scope="module")
def world() -> World:
    info = json.loads((DEFAULT_OUT / "training_info.json").read_text())
    return World.generate(WorldConfig(**info["config"]["world"]))


def test_alignment_prompts_are_balanced_and_use_every_phrasing(world: World) -> None:
    people = alignment_people(world, 30)
    assert len(people) == 30
    assert {b: sum(p.bucket == b for p in people) for b in BUCKETS} == dict.fromkeys(BUCKETS, 10)
    assert all(p.split == "alignment" for p in people)
    prompts = alignment_prompts(world, ExperimentConfig(people=30, questions_per_person=3))
    assert len(prompts) == 90 and {v for _, v in prompts} == {0, 1, 2}
    assert len(alignment_prompts(world, ExperimentConfig())) == len(world.split("alignment"))


def test_config_and_command_line_validate() -> None:
    with pytest.raises(ValueError, match="questions_per_person"):
        ExperimentConfig(questions_per_person=4)
    with pytest.raises(ValueError, match="nofact_rule"):
        ExperimentConfig(nofact_rule="neutral")
    with pytest.raises(ValueError, match="split"):
        ExperimentConfig(split="alignment")
    with pytest.raises(ValueError, match="pair_rule"):
        ExperimentConfig(pair_rule="longest")
    with pytest.raises(ValueError, match="mask_unit"):
        ExperimentConfig(mask_unit="token")
    with pytest.raises(ValueError, match="nll_alpha"):
        ExperimentConfig(nll_alpha=-1.0)
    assert parse_args(["--pair-rule", "net_correct"])[0].pair_rule == "net_correct"
    args = "--seeds 3 4 --samples-per-prompt 8 --nofact-rule released --split validation --people 60"
    config, ns = parse_args([*args.split(), "--questions-per-person", "2", "--out", "/tmp/x"])
    assert config.seeds == (3, 4) and config.samples_per_prompt == 8 and config.nofact_rule == "released"
    assert config.split == "validation" and config.people == 60 and config.questions_per_person == 2
    assert ns.out == Path("/tmp/x") and not ns.reuse_samples and ns.fresh_world is None
    levers = "--mask-unit claim --nll-alpha 0.5 --anchor-dpo --fresh-world 7 --fresh-model /tmp/m"
    config, ns = parse_args(levers.split())
    assert (config.mask_unit, config.nll_alpha, config.anchor_dpo) == ("claim", 0.5, True)
    assert ns.fresh_world == 7 and ns.fresh_model == Path("/tmp/m")


def _sentence(person: Person, attribute: str, value: str | None = None) -> str:
    values = person_values(person, {})
    if value is not None:
        values[attribute] = value
    return T.render(T.FACT_TEMPLATES[attribute][0], person.name, f"{person.name}'s", values)


def _answers(world: World, people: list[Person], style: str) -> list[str]:
    """Synthetic greedy answers: ``base`` 2 true + 1 false, ``better`` 2 true, ``padder`` 1 true + fillers."""
    filler = T.render(T.FILLER_TEMPLATES[1], "She", "Her", {})
    other_city = world.cities
    out = []
    for p in people:
        true = [_sentence(p, a) for a in ("birthplace", "occupation") if p.value(a)][:2]
        wrong_city = next(c for c in other_city if c != p.value("birthplace"))
        false = _sentence(p, "birthplace", wrong_city)
        if style == "base":
            out.append(" ".join([*true, false]))
        elif style == "better":
            out.append(" ".join(true))
        else:
            out.append(" ".join([*true[:1], filler, filler, filler]))
    return out


def _records(world: World, people: list[Person], style: str) -> list[EvalRecord]:
    labeler = WorldLabeler(world)
    answers = _answers(world, people, style)
    judgments = labeler.judge_responses([(a, p.name) for a, p in zip(answers, people, strict=True)])
    return [
        EvalRecord.of(p, a, j, labeler.supported_by_attribute(j, p.name))
        for p, a, j in zip(people, answers, judgments, strict=True)
    ]


def test_padding_with_fact_free_sentences_is_not_an_honest_win(world: World) -> None:
    people = [p for p in world.split("validation") if p.value("birthplace") and p.value("occupation")][:40]
    base = _records(world, people, "base")
    records = {
        "validation": {
            "base": {0: base},
            "dpo": {0: _records(world, people, "better")},
            "maskdpo": {0: _records(world, people, "padder")},
        }
    }
    analysis = analyse(records, gamma=5.0, resamples=200)
    subs = analysis["validation"]["subgroups"]["all"]
    assert subs["base"]["anah_score"]["value"] == pytest.approx(2 / 3)
    assert subs["maskdpo"]["anah_score"]["value"] == 1.0
    assert subs["maskdpo"]["nofact_per_answer"]["value"] == 3.0
    paired = analysis["validation"]["paired"]
    won, why = honest_win(paired["maskdpo-base"])
    assert not won and any("padding" in w for w in why) and any("fewer correct facts" in w for w in why)
    assert honest_win(paired["dpo-base"]) == (True, [])
    result = verdict(analysis, "validation")
    assert result["maskdpo-dpo"]["honest_win"] is False and result["claim_holds"] is False
    assert result["target"] == {"maskdpo_above_dpo": False, "dpo_above_base": True,
                                "maskdpo_keeps_facts": False, "met": False}
    assert result["ordering_point_estimates"] is False  # Mask-DPO ties DPO on ANAH (both 100 %)


def test_report_files_hold_the_three_methods(world: World, tmp_path: Path) -> None:
    people = [p for p in world.split("heldout") if p.value("birthplace") and p.value("occupation")][:20]
    records = {
        "heldout": {
            m: {0: _records(world, people, s)}
            for m, s in zip(("base", "dpo", "maskdpo"), ("base", "base", "better"), strict=True)
        }
    }
    config = {**ExperimentConfig().__dict__, "seeds": (0,), "resamples": 100}
    seeds = {
        0: {
            "samples": {"samples": 6, "ok": 5, "incorrect": 4, "nofact": 1},
            "pairs": {"prompts": 3, "pairs": 2, "dropped": {}, "degenerate_kept": 0},
            "train": {
                m: {"kept_fraction": {"chosen": 0.5, "rejected": 0.8}, "last_log": {"loss": 0.5}}
                for m in ("dpo", "maskdpo")
            },
        }
    }
    timing = {"wall_s": 60.0, "cpu_s": 50.0, "phases_wall_s": {"train": 30.0}}
    run = build_summary(config, records, seeds, timing, 3)
    fresh = {"world_seed": 7, "model_train_s": 300.0, **run}
    summary = write_report(tmp_path, {**run, "fresh_world": fresh})
    report = (tmp_path / "report.md").read_text()
    for row in ("| base |", "| DPO |", "| Mask-DPO |"):
        assert row in report
    assert "Mask-DPO − DPO" in report and "near" in report
    # correct facts by attribute: the "better" answers keep both true facts, so nothing is lost
    assert "| birthplace | 1.00 | 1.00 | 1.00 |" in report and "| occupation | 1.00 | 1.00 | 1.00 |" in report
    assert "## A world never used for tuning (world seed 7)" in report and "--fresh-world 7" in report
    assert "Target (" in report and "**not met** -- missed: DPO above base" in report
    # F1@K against the base model's median facts (3: two true, one false), the same K for every method
    g = summary["analysis"]["heldout"]
    assert g["f1_k"] == 3.0 and "K = 3 (the base model's median facts per answer)" in report
    f1 = {m: g["subgroups"]["all"][m]["f1_at_k"]["value"] for m in ("base", "maskdpo")}
    assert f1["base"] == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3)) and f1["maskdpo"] == pytest.approx(0.8)
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["verdict"]["maskdpo-base"]["honest_win"] is True
    assert summary["verdict"]["dpo-base"]["honest_win"] is False  # identical answers: no gain


def test_a_trained_run_is_reused_only_with_the_same_pairs_and_settings(world: World, tmp_path: Path) -> None:
    """Tuning reuses a method's greedy answers when its pairs and training options are unchanged."""
    from maskdpo.toyworld.experiment import _cached_run, _digest, _training_key

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"x": 1}\n')
    people = world.split("validation")[:2]
    config = ExperimentConfig(split="validation", eval_alignment=False)
    key = _training_key(pairs, DEFAULT_OUT, "maskdpo", 0, config)
    run = tmp_path / f"maskdpo-{_digest(key)}"
    run.mkdir()
    (run / "greedy-validation.jsonl").write_text(
        "".join(json.dumps({"name": p.name, "answer": f"about {p.name}"}) + "\n" for p in people))
    (run / "run.json").write_text(json.dumps({"key": key, "info": {"pairs": 3}}))
    assert _cached_run(run, key, {"validation": people}) == (
        {"pairs": 3}, {"validation": [f"about {p.name}" for p in people]})
    anchored = _training_key(pairs, DEFAULT_OUT, "maskdpo", 0, ExperimentConfig(split="validation", nll_alpha=0.5,
                                                                              eval_alignment=False))
    assert anchored != key and _cached_run(run, anchored, {"validation": people}) is None
    assert _training_key(pairs, DEFAULT_OUT, "dpo", 0, ExperimentConfig(nll_alpha=0.5)) == _training_key(
        pairs, DEFAULT_OUT, "dpo", 0, ExperimentConfig())  # the anchor is Mask-DPO's unless --anchor-dpo
    pairs.write_text('{"x": 2}\n')
    assert _cached_run(run, _training_key(pairs, DEFAULT_OUT, "maskdpo", 0, config), {"validation": people}) is None
