"""``maskdpo train`` on the tiny model: 20 steps lower the loss and raise reward accuracy; resume works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdpo.trainer.checkpoint import read_training_info
from maskdpo.trainer.cli import main
from tests.helpers.training import write_judged


def test_cli_training_lowers_loss_and_raises_reward_accuracy(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_judged(tmp_path / "judged.jsonl")
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(data),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--steps",
        "20",
        "--lr",
        "1e-3",
        "--batch-size",
        "2",
        "--eval-train",
        "--save-steps",
        "10",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pairs: 4 pairs from 4 prompts" in printed
    summary = json.loads(printed.strip().splitlines()[-1])
    before, after = summary["eval_before"], summary["eval_after"]
    assert after["eval_loss"] < before["eval_loss"] - 0.1
    assert before["eval_rewards/accuracies"] == 0.0 and after["eval_rewards/accuracies"] == 1.0
    # checkpoints and the final model carry training_info.json; nothing half-written is left behind
    info = read_training_info(out / "final")
    assert info["method"] == "maskdpo" and info["mask_config"]["rule"] == "default"
    assert info["data_fingerprint"].startswith("sha256:") and info["libraries"]["trl"] == "1.16.0"
    assert (out / "final" / "model.safetensors").exists()
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint-10",
        "checkpoint-20",
    ]
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert read_training_info(out / "checkpoints" / "checkpoint-10")["global_step"] == 10
    steps = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("mask/kept_fraction_chosen" in row for row in steps)

    # resume: 2 more steps continue from checkpoint-20
    argv[argv.index("--steps") + 1] = "22"
    argv.remove("--eval-train")
    assert main([*argv, "--resume"]) == 0
    assert read_training_info(out / "final")["global_step"] == 22
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    trained_steps = [r["step"] for r in rows if "loss" in r and "train_runtime" not in r]
    assert trained_steps == [*range(1, 21), 21, 22]  # the resumed run did steps 21 and 22 only


def test_cli_reports_bad_data(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Q", "response": "A."}\n')
    assert (
        main(
            [
                "train",
                "--data",
                str(bad),
                "--model",
                str(tiny_model_dir),
                "--out",
                str(tmp_path / "o"),
                "--format",
                "judged",
            ]
        )
        == 2
    )
    assert "bad.jsonl:1: field 'sentences': missing" in capsys.readouterr().err


def test_lora_run_saves_an_adapter(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_judged(tmp_path / "judged.jsonl")
    out = tmp_path / "lora"
    argv = [
        "train",
        "--data",
        str(data),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--steps",
        "2",
        "--lr",
        "1e-3",
        "--lora",
        "--lora-r",
        "4",
        "--no-progress",
        "--loss",
        "dpo",
    ]
    assert main(argv) == 0
    assert (out / "final" / "adapter_model.safetensors").exists()
    info = read_training_info(out / "final")
    assert info["method"] == "dpo" and info["mask_config"]["rule"] == "all"
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2


def test_a_bfloat16_checkpoint_trains_in_float32_without_bf16(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """transformers 5 loads a model in the dtype its config declares (the SmolLM2 build declares bfloat16);
    without ``--bf16`` the trainer must still train float32 weights, not pure bfloat16 ones (the checkpoint
    to resume from holds them); the final model is saved in the dtype the model declares."""
    import shutil

    from safetensors import safe_open

    model = shutil.copytree(tiny_model_dir, tmp_path / "declares-bf16")
    config = json.loads((model / "config.json").read_text())
    config.pop("torch_dtype", None)
    config["dtype"] = "bfloat16"
    (model / "config.json").write_text(json.dumps(config))
    data = write_judged(tmp_path / "judged.jsonl")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--model", str(model), "--out", str(out), "--steps", "1",
            "--batch-size", "2", "--save-steps", "1", "--no-progress"]
    assert main(argv) == 0

    def dtypes(folder: Path) -> set[str]:
        with safe_open(str(folder / "model.safetensors"), framework="pt") as saved:
            return {str(saved.get_tensor(key).dtype) for key in saved.keys()}

    assert dtypes(out / "checkpoints" / "checkpoint-1") == {"torch.float32"}
    assert dtypes(out / "final") == {"torch.bfloat16"}


def test_cli_levers_reach_the_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """--mask-unit, --pair-rule and --nll-alpha are recorded where the run used them."""
    data = write_judged(tmp_path / "judged.jsonl")
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(out), "--steps", "1",
            "--mask-unit", "claim", "--pair-rule", "no_fewer_correct", "--nll-alpha", "0.5", "--no-progress"]
    assert main(argv) == 0
    info = read_training_info(out / "final")
    assert info["mask_config"]["unit"] == "claim" and info["mask_config"]["identity"].endswith(",unit=claim")
    assert info["dpo_config"]["loss_type"] == ["sigmoid", "sft"] and info["dpo_config"]["loss_weights"] == [1.0, 0.5]
    assert info["options"]["pair_rule"] == "no_fewer_correct" and info["options"]["nll_alpha"] == "0.5"
