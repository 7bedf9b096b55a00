"""Plain-text views of results for terminals: scored answers, batch metrics, judge identities, a round's
live progress, a table of rounds and a round's memory plan. The ``maskdpo`` command prints with these; scripts may too.

    from maskdpo.client import Client
    from maskdpo.client.display import print_answer
    with Client() as client:
        print_answer(client.score("Paris is in France.", knowledge=...).answer)
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from maskdpo.client._client import Client
from maskdpo.v1 import alignment_pb2, common_pb2, factuality_pb2, memory_plan_pb2

State = alignment_pb2.AlignmentRound.State
Decision = alignment_pb2.PromotionDecision
BAR = 24
GIB = 2**30
_LABEL = {common_pb2.SENTENCE_LABEL_OK: "ok", common_pb2.SENTENCE_LABEL_CONTRADICTORY: "contradictory",
          common_pb2.SENTENCE_LABEL_UNVERIFIABLE: "unverifiable", common_pb2.SENTENCE_LABEL_NOFACT: "nofact"}


def _fmt(value: float | None, scale: float = 100.0) -> str:
    return "-" if value is None else f"{value * scale:.1f}"


def coverage_line(coverage: common_pb2.Coverage) -> str:
    """What the judge could check: "checked 2 of 4 sentences, unmatched 1, unparsed 0"."""
    return (f"checked {coverage.checked} of {coverage.sentences} sentences, unmatched {coverage.unmatched}, "
            f"unparsed {coverage.unparsed}")


def answer_state(metrics: factuality_pb2.AnswerMetrics) -> str:
    """"abstained", "not checkable by this judge", or "" for an answer with scores."""
    if metrics.abstained:
        return "abstained"
    return "not checkable by this judge" if metrics.uncheckable else ""


def print_answer(answer: factuality_pb2.ScoredAnswer, out: Any = sys.stdout) -> None:
    """One row per sentence (a label ending in "*" is unmatched: the judge's fallback), then the scores."""
    print(f"{'#':>3}  {'label':<14} {'chosen':<6} {'rejected':<8} sentence", file=out)
    for i, s in enumerate(answer.sentences, start=1):
        text = s.text if len(s.text) <= 90 else s.text[:87] + "..."
        label = _LABEL.get(s.label, "?") + ("*" if s.unmatched else "")
        print(f"{i:>3}  {label:<14} {'keep' if s.chosen_mask else '-':<6} "
              f"{'keep' if s.rejected_mask else '-':<8} {text}", file=out)
    m = answer.metrics
    anah = m.anah_score if m.HasField("anah_score") else None
    print(f"     ANAH score {_fmt(anah)}  |  ok {m.counts.ok}  contradictory {m.counts.contradictory}  "
          f"unverifiable {m.counts.unverifiable}  nofact {m.counts.nofact}", file=out)
    state = answer_state(m)
    print(f"     {coverage_line(m.coverage)}{'  |  ' + state if state else ''}", file=out)
    if any(s.unmatched for s in answer.sentences):
        print("     * unmatched: states something the judge could not match to its knowledge", file=out)


def print_batch(response: factuality_pb2.BatchScoreResponse, out: Any = sys.stdout) -> None:
    m = response.metrics

    def est(e: factuality_pb2.Estimate) -> str:
        value = _fmt(e.value if e.HasField("value") else None)
        if e.HasField("interval"):
            value += f" [{e.interval.low * 100:.1f}, {e.interval.high * 100:.1f}]"
        return value

    print(f"{'answer':>6}  {'ok':>3} {'contr':>5} {'unver':>5} {'nofact':>6} {'unmat':>5}  ANAH", file=out)
    for i, a in enumerate(response.answers, start=1):
        c = a.metrics.counts
        anah = a.metrics.anah_score if a.metrics.HasField("anah_score") else None
        state = answer_state(a.metrics)
        print(f"{i:>6}  {c.ok:>3} {c.contradictory:>5} {c.unverifiable:>5} {c.nofact:>6} "
              f"{a.metrics.coverage.unmatched:>5}  {_fmt(anah)}{'  ' + state if state else ''}", file=out)
    print(f"\nanswers {m.answers}   respond ratio {m.respond_ratio * 100:.1f} %   "
          f"facts/response {m.facts_per_response:.2f}", file=out)
    print(f"coverage: {coverage_line(m.coverage)}; not checkable by this judge: {m.uncheckable} answer(s) "
          "(responding, left out of every score)", file=out)
    print(f"ANAH score {est(m.anah_score)}   (released convention {est(m.anah_score_released)})", file=out)
    print(f"FActScore (gamma {m.gamma:g}) {est(m.factscore)}   without penalty {est(m.factscore_no_penalty)}",
          file=out)
    print(f"F1@K (K={m.k:g}, {m.k_rule}) {est(m.f1_at_k)}", file=out)
    for g in m.groups:
        print(f"  group {g.group}: answers {g.answers}  ANAH {_fmt(g.anah_score if g.HasField('anah_score') else None)}",
              file=out)


def judge_line(identity: common_pb2.JudgeIdentity) -> str:
    kind = "heuristic" if identity.heuristic else "verifier"
    return (f"judge: {identity.backend} ({kind}; model {identity.model or '-'}; splitter {identity.splitter}; "
            f"knowledge {identity.knowledge_source or '-'})")


def follow(
    client: Client, name: str, after: int = 0, out: TextIO = sys.stdout
) -> alignment_pb2.AlignmentRound:
    """Print a round's events (a progress line that rewrites itself) until it ends; return the round."""
    live = False
    for event in client.watch_round(name, after_sequence=after):
        phase = alignment_pb2.RoundPhase.Name(event.phase) if event.phase else "-"
        if event.kind == "PROGRESS" and event.progress_total:
            filled = int(BAR * min(event.progress_done / event.progress_total, 1.0))
            out.write(
                f"\r  {phase:<8} [{'#' * filled}{'.' * (BAR - filled)}] "
                f"{event.progress_done}/{event.progress_total} {event.message[:60]:<60}"
            )
            live = True
        elif event.kind != "METRICS":
            if live:
                out.write("\n")
                live = False
            out.write(f"#{event.sequence:<4} {phase:<8} {event.kind:<13} {event.message}\n")
        out.flush()
    if live:
        out.write("\n")
    return client.get_round(name)


def _score(e: alignment_pb2.Evaluation) -> str:
    return f"{e.anah_score:.3f}" if e.HasField("anah_score") else "-"


def _facts_change(r: alignment_pb2.AlignmentRound) -> str:
    """Correct facts per answer against the chain's start, with the interval the rule read."""
    d = next((x for x in r.decision.versus_chain_start if x.metric == "correct_facts_per_answer"), None)
    if d is None or not d.HasField("interval"):
        return "-"
    return f"{d.delta:+.2f} [{d.interval.low:+.2f},{d.interval.high:+.2f}]"


def _outcome(r: alignment_pb2.AlignmentRound) -> str:
    if r.promoted:
        return f"v{r.promoted_weight_version}"
    outcome = r.decision.outcome
    return "no" if not outcome else Decision.Outcome.Name(outcome).lower()


def rounds_table(rounds: list[alignment_pb2.AlignmentRound], out: TextIO = sys.stdout) -> None:
    """One line per round: ANAH before / after, correct facts per answer before / after and their change
    against the chain's start (95 % interval), and the outcome (the served version when promoted)."""
    out.write(
        f"{'round':<24} {'state':<10} {'ANAH before':>11} {'ANAH after':>10} {'facts b':>7} {'facts a':>7} "
        f"{'facts vs chain start':>22} {'promoted':>9}\n"
    )
    for r in rounds:
        out.write(
            f"{r.name:<24} {State.Name(r.state):<10} {_score(r.before):>11} {_score(r.after):>10} "
            f"{r.before.correct_facts_per_answer:>7.2f} {r.after.correct_facts_per_answer:>7.2f} "
            f"{_facts_change(r):>22} {_outcome(r):>9}\n"
        )


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


def print_memory_plan(plan: memory_plan_pb2.MemoryPlan, out: TextIO | None = None) -> None:
    """The plan as a table: one row per component (bytes on each device and how they were computed), the
    total, and the verdict (to ``out``, default the current ``sys.stdout``)."""
    out = out or sys.stdout
    unit = "GPU" if plan.device_kind == "gpu" else "CPU node"
    memory = _gib(plan.device_memory_bytes) if plan.device_memory_bytes else "unknown"
    out.write(f"model      {plan.architecture}: {plan.parameters:,} parameters ({plan.parameters / 1e9:.2f} B), "
              f"{plan.trainable_parameters:,} trained\n"
              f"recipe     {plan.recipe}\n"
              f"devices    {plan.devices} of {plan.available_devices} {unit}(s) offered, {memory} each "
              f"({plan.device_memory_source}), headroom {plan.headroom:.0%}\n\n")
    out.write(f"{'component':<12} {'per ' + unit:>12}  how\n")
    for c in plan.components:
        out.write(f"{c.name:<12} {_gib(c.bytes):>12}  {c.formula}\n")
    out.write(f"{'total':<12} {_gib(plan.total_bytes):>12}\n\n{plan.verdict}\n")
