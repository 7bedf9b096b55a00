"""scripts/gpu_memory_check.sh, the GPU check of the memory plan, in its ``--tiny`` form on the CPU: the same
code path (environment script, rows of a set length, both recipes with both trainers, the plan next to each
run, the Markdown) on a small model. The resident state each run measures (parameters and optimizer state)
must equal the plan's weights + optimizer to the byte: the bytes-per-parameter table is what TRL, PEFT and
AdamW really allocate (bf16 moments for bf16 weights, float32 LoRA adapters)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_tiny_run_writes_the_markdown_with_the_plan_next_to_each_run(tmp_path: Path) -> None:
    out = tmp_path / "memory.md"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "2"}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_memory_check.sh"), "--tiny", "--pairs", "1", "--steps", "2",
         "--length", "96", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| LoRA") or line.startswith("| full")]
    assert [r.split(" | ")[1] for r in rows] == ["Mask-DPO", "TRL DPO"] * 2
    assert all("(equal)" in r and " ms |" in r for r in rows), rows
    assert "220 tokens per forward" in text  # 1 pair: chosen + rejected rows padded to the longest, 110 tokens
    assert "- full bf16, precomputed reference: weights 3.75 MiB (1,967,360 x 2 B)" in text
