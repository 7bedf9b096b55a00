"""The scoring service end to end: a real server process, real Ray, the SDK, the CLI, health, reflection,
auth, bad requests and shutdown."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from maskdpo.client import AsyncClient, Client, Item, Knowledge, ScoreOptions
from maskdpo.client import errors as sdk_errors
from maskdpo.server.launcher import ServerProcess
from maskdpo.v1 import common_pb2, factuality_pb2, factuality_pb2_grpc, generation_pb2, generation_pb2_grpc
from tests.integration.conftest import OPERATOR, READER, start_server_process

FACTS = [("Ada Lind", "birth_year", "1901"), ("Ada Lind", "birthplace", "Oslo"),
         ("Ada Lind", "occupation", "chemist")]
PASSAGE = ("Ada Lind (born 1901 in Oslo) was a Norwegian chemist. She worked at the University of Oslo "
           "and won the Gunnerus Medal in 1950.")


def _client(server: ServerProcess, token: str | None = READER) -> Client:
    return Client(server.target, token=token, timeout=120)


def test_health_and_reflection(server: ServerProcess) -> None:
    with _client(server, token=None) as client:  # probes need no token
        assert client.health() == "SERVING"
        assert client.health("maskdpo.v1.FactualityService") == "SERVING"
        assert client.health("maskdpo.v1.GenerationService") == "NOT_SERVING"
    with grpc.insecure_channel(server.target) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert {"maskdpo.v1.FactualityService", "maskdpo.v1.AlignmentService", "maskdpo.v1.ModelService",
            "maskdpo.v1.GenerationService", "google.longrunning.Operations", "grpc.health.v1.Health"} <= set(services)


def test_kb_scoring_through_the_sdk(server: ServerProcess) -> None:
    text = "Ada Lind's birth year was 1901. Her birthplace is Bergen. What a life!"
    with _client(server) as client:
        result = client.score(text, knowledge=Knowledge(facts=FACTS), topic="Ada Lind", judge="kb")
    labels = [s.label for s in result.answer.sentences]
    assert labels == [common_pb2.SENTENCE_LABEL_OK, common_pb2.SENTENCE_LABEL_CONTRADICTORY,
                      common_pb2.SENTENCE_LABEL_NOFACT]
    assert [text[s.start : s.end] for s in result.answer.sentences] == [s.text for s in result.answer.sentences]
    assert [s.chosen_mask for s in result.answer.sentences] == [True, False, False]
    assert [s.rejected_mask for s in result.answer.sentences] == [False, True, False]
    assert result.judge.backend == "kb" and not result.judge.heuristic and result.judge.splitter.startswith("pysbd")
    assert result.answer.metrics.anah_score == pytest.approx(0.5)


def test_kb_on_natural_text_from_a_plain_grpc_client_reports_its_coverage(server: ServerProcess) -> None:
    """A service with its own facts and text: sentences read as natural text, names with "Å", and coverage
    counts per answer and per batch; an answer the judge matches nothing of is uncheckable, not abstained."""
    knowledge = factuality_pb2.Knowledge()
    for subject, attribute, value in [("Åsa Lind", "birthplace", "Malmö"), ("Åsa Lind", "birth year", "1961"),
                                      ("Åsa Lind", "occupation", "painter")]:
        knowledge.facts.facts.add(subject=subject, attribute=attribute, value=value)
    text = "Åsa Lind was born in Malmö in 1961. She was a chemist. Åsa Lind won the Nobel Prize."
    metadata = (("authorization", f"Bearer {READER}"),)
    with grpc.insecure_channel(server.target) as channel:
        stub = factuality_pb2_grpc.FactualityServiceStub(channel)
        one = stub.Score(factuality_pb2.ScoreRequest(judge="kb", answer=factuality_pb2.Answer(response=text),
                                                     knowledge=knowledge), metadata=metadata, timeout=120)
        batch = stub.BatchScore(factuality_pb2.BatchScoreRequest(judge="kb", knowledge=knowledge, items=[
            factuality_pb2.ScoreItem(answer=factuality_pb2.Answer(response=text, topic="Åsa Lind")),
            factuality_pb2.ScoreItem(answer=factuality_pb2.Answer(response="Åsa Lind won the Nobel Prize.")),
        ]), metadata=metadata, timeout=120)
    assert [s.label for s in one.answer.sentences] == [
        common_pb2.SENTENCE_LABEL_OK, common_pb2.SENTENCE_LABEL_CONTRADICTORY, common_pb2.SENTENCE_LABEL_UNVERIFIABLE]
    assert [s.unmatched for s in one.answer.sentences] == [False, False, True]
    m = one.answer.metrics
    assert (m.coverage.sentences, m.coverage.checked, m.coverage.unmatched) == (3, 2, 1)
    assert not m.abstained and not m.uncheckable and one.judge.settings["extractor"] == "natural"
    first, second = batch.answers
    assert (first.metrics.coverage.checked, first.metrics.coverage.unmatched) == (2, 1)
    assert second.metrics.uncheckable and not second.metrics.abstained
    assert (second.metrics.coverage.checked, second.metrics.coverage.unmatched) == (0, 1)
    totals = batch.metrics
    assert totals.uncheckable == 1 and totals.respond_ratio == pytest.approx(1.0)
    assert (totals.coverage.sentences, totals.coverage.checked, totals.coverage.unmatched) == (4, 2, 2)
    assert totals.factscore_no_penalty.value == pytest.approx(1 / 3)  # the first answer only


def test_heuristic_batch_with_groups_and_intervals(server: ServerProcess) -> None:
    items = [Item("Ada Lind was born in 1901 in Oslo. She was a chemist.", groups=["rare"]),
             Item("Ada Lind was born in 1955 in Oslo.", groups=["rare"]),
             Item("I'm sorry, I could not find any information about Ada Lind.", groups=["frequent"])]
    with _client(server) as client:
        result = client.batch_score(items, knowledge=Knowledge(passages=[("Ada Lind", PASSAGE)]))
    assert result.judge.heuristic and result.judge.backend == "heuristic"
    m = result.metrics
    assert m.answers == 3 and m.respond_ratio == pytest.approx(2 / 3)
    assert m.anah_score.HasField("interval") and m.anah_score.interval.resamples == 1000
    assert [g.group for g in m.groups] == ["frequent", "rare"]
    assert result.answers[1].sentences[0].label == common_pb2.SENTENCE_LABEL_CONTRADICTORY


async def test_async_client(server: ServerProcess) -> None:
    async with AsyncClient(server.target, token=READER) as client:
        result = await client.score("Ada Lind's birth year was 1901.", knowledge=Knowledge(facts=FACTS), topic="Ada Lind",
                                    judge="kb")
        judges = await client.list_judges()
    assert result.answer.sentences[0].label == common_pb2.SENTENCE_LABEL_OK
    assert {j.name for j in judges.judges} == {"kb", "heuristic"}
    assert [j.name for j in judges.judges if j.is_default] == ["heuristic"]


def test_cli_scores_text_and_jsonl(server: ServerProcess, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "maskdpo.client.cli", "score", "--target", server.target, "--token", READER]
    out = subprocess.run([*base, "Ada Lind was born in 1901 in Oslo.", "--passage", PASSAGE, "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["answer"]["sentences"][0]["label"] == "SENTENCE_LABEL_OK"
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(json.dumps({"response": r, "topic": "Ada Lind", "facts": [list(f) for f in FACTS]})
                               for r in ("Her birth year was 1901.", "Her occupation was painter.")))
    out = subprocess.run([*base, "--jsonl", str(batch), "--judge", "kb"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ANAH score 50.0" in out.stdout and "judge: kb" in out.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "x"}\n{"prompt": "no response"}\n')
    out = subprocess.run([*base, "--jsonl", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "bad.jsonl:2" in out.stderr


def test_auth(server: ServerProcess) -> None:
    with _client(server, token=None) as anonymous, pytest.raises(sdk_errors.UnauthenticatedError):
        anonymous.score("x", knowledge=Knowledge(facts=FACTS), judge="kb")
    with _client(server, token="wrong") as stranger, pytest.raises(sdk_errors.UnauthenticatedError):
        stranger.list_judges()
    with _client(server, token=READER) as reader, pytest.raises(sdk_errors.PermissionDeniedError) as denied:
        reader.create_knowledge_source("nope", facts=FACTS)
    assert denied.value.metadata["required_role"] == "operator"
    with _client(server, token=OPERATOR) as operator:
        source = operator.create_knowledge_source("ada", facts=FACTS, passages=[("Ada Lind", PASSAGE)])
        assert source.name == "knowledgeSources/ada" and source.fact_count == 3
        result = operator.score("The birthplace of Ada Lind is Oslo.", knowledge=Knowledge(source="ada"), topic="Ada Lind",
                                judge="kb")
        assert result.answer.sentences[0].label == common_pb2.SENTENCE_LABEL_OK
        assert result.judge.knowledge_source == "knowledgeSources/ada"
        with pytest.raises(sdk_errors.AlreadyExistsError):
            operator.create_knowledge_source("ada", facts=FACTS)


async def test_knowledge_sources_through_both_clients_and_the_cli(server: ServerProcess) -> None:
    async with AsyncClient(server.target, token=OPERATOR) as operator:
        created = await operator.create_knowledge_source("lifecycle", passages=[("Ada Lind", PASSAGE)],
                                                         description="for the lifecycle test")
        assert created.name == "knowledgeSources/lifecycle" and created.passage_count == 1
        assert (await operator.get_knowledge_source("lifecycle")).description == "for the lifecycle test"
    with _client(server) as reader:
        assert reader.get_knowledge_source("knowledgeSources/lifecycle").passage_count == 1
        assert "knowledgeSources/lifecycle" in {s.name for s in reader.list_knowledge_sources()}
        with pytest.raises(sdk_errors.PermissionDeniedError):
            reader.delete_knowledge_source("lifecycle")
    cli = [sys.executable, "-m", "maskdpo.client.cli", "knowledge", "--target", server.target, "--token", OPERATOR]
    listed = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "knowledgeSources/lifecycle" in listed.stdout, listed.stderr
    got = subprocess.run([*cli, "get", "lifecycle", "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(got.stdout)["passageCount"] == 1, got.stderr
    deleted = subprocess.run([*cli, "delete", "lifecycle"], capture_output=True, text=True, timeout=120)
    assert deleted.returncode == 0, deleted.stderr
    gone = subprocess.run([*cli, "get", "lifecycle"], capture_output=True, text=True, timeout=120)
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr


def test_a_registered_source_is_embedded_when_registered_and_judged_against(server: ServerProcess) -> None:
    page = " ".join([f"The village of Ostmark{i} lies on a bend of the Grey River." for i in range(40)] + [PASSAGE])
    with Client(server.target, token=OPERATOR, timeout=120) as operator:
        operator.create_knowledge_source("pages", passages=[("Ada Lind", page)])
        result = operator.score("Ada Lind was born in 1901. She won the Gunnerus Medal in 1962.",
                                knowledge=Knowledge(source="pages"), topic="Ada Lind", judge="heuristic")
        operator.delete_knowledge_source("pages")
    assert [s.label for s in result.answer.sentences] == [common_pb2.SENTENCE_LABEL_OK,
                                                          common_pb2.SENTENCE_LABEL_CONTRADICTORY]
    assert result.judge.knowledge_source == "knowledgeSources/pages"


def test_registration_stores_the_chunk_vectors_in_the_data_folder(server: ServerProcess) -> None:
    with Client(server.target, token=OPERATOR, timeout=120) as operator:
        operator.create_knowledge_source("stored", passages=[("Ada Lind", PASSAGE)])
    folder = server.log.parent / "data" / "knowledge" / "stored"
    assert json.loads((folder / "meta.json").read_text())["embedding_model"] == "all-MiniLM-L6-v2"
    assert [json.loads(line) for line in (folder / "chunks.jsonl").read_text().splitlines()] == [
        ["Ada Lind (born 1901 in Oslo) was a Norwegian chemist.",
         "She worked at the University of Oslo and won the Gunnerus Medal in 1950."]]
    assert (folder / "vectors.npy").stat().st_size > 2 * 384 * 4


@pytest.mark.parametrize(
    ("kwargs", "error", "reason", "field"),
    [
        ({"response": ""}, sdk_errors.InvalidArgumentError, "INVALID_FIELD", "answer.response"),
        ({"response": "x" * 6000}, sdk_errors.InvalidArgumentError, "TEXT_TOO_LONG", "answer.response"),
        ({"response": "Hi.", "judge": "oracle"}, sdk_errors.InvalidArgumentError, "INVALID_FIELD", "judge"),
        ({"response": "Hi.", "knowledge": Knowledge(source="missing")}, sdk_errors.NotFoundError, "NOT_FOUND", None),
        ({"response": "Hi.", "judge": "kb"}, sdk_errors.InvalidArgumentError, "INVALID_FIELD", "knowledge"),
        ({"response": "Hi.", "options": ScoreOptions(bootstrap_seed=-1)}, sdk_errors.InvalidArgumentError,
         "INVALID_FIELD", "options.bootstrap_seed"),
        ({"response": "Hi.", "judge": "kb", "knowledge": Knowledge(passages=[PASSAGE])},
         sdk_errors.InvalidArgumentError, "INVALID_FIELD", "knowledge"),
    ],
)
def test_bad_requests_get_reasons(server: ServerProcess, kwargs: dict[str, object], error: type[Exception],
                                  reason: str, field: str | None) -> None:
    with _client(server) as client:
        response = kwargs.pop("response")
        with pytest.raises(error) as info:
            client.score(str(response), **kwargs)  # type: ignore[arg-type]
        assert info.value.reason == reason  # type: ignore[attr-defined]
        if field:
            assert info.value.field == field  # type: ignore[attr-defined]
        assert client.health() == "SERVING"


def test_malformed_and_oversized_messages(server: ServerProcess) -> None:
    metadata = (("authorization", f"Bearer {READER}"),)
    with grpc.insecure_channel(server.target) as channel:
        stub = factuality_pb2_grpc.FactualityServiceStub(channel)
        request = factuality_pb2.ScoreRequest(answer=factuality_pb2.Answer(response="Hi."))
        request.options.mask_rule = 77  # an enum value the contract does not define
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(request, metadata=metadata, timeout=30)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        garbage = channel.unary_unary("/maskdpo.v1.FactualityService/Score")
        with pytest.raises(grpc.RpcError) as info:
            garbage(b"\xff\xff\xff\x0f\x00", metadata=metadata, timeout=30)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "does not parse" in info.value.details() and "Traceback" not in info.value.details()
        huge = factuality_pb2.ScoreRequest(answer=factuality_pb2.Answer(response="y" * (2 * 1024 * 1024)))
        with pytest.raises(grpc.RpcError) as info:
            stub.Score(huge, metadata=metadata, timeout=30)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        many = factuality_pb2.BatchScoreRequest(items=[factuality_pb2.ScoreItem(
            answer=factuality_pb2.Answer(response="Hi."))] * 17)
        with pytest.raises(grpc.RpcError) as info:
            stub.BatchScore(many, metadata=metadata, timeout=30)
        assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        unimplemented = generation_pb2_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            unimplemented.Generate(generation_pb2.GenerateRequest(prompt="hi"), metadata=metadata, timeout=30)
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED and "not available" in info.value.details()
    with _client(server) as client:
        assert client.health() == "SERVING"


def test_deadline_is_passed_down(server: ServerProcess) -> None:
    items = [Item(f"Ada Lind was born in {1800 + i} in Oslo and worked as a chemist for {i} years.")
             for i in range(16)]
    with _client(server) as client:
        with pytest.raises(sdk_errors.DeadlineExceededError):
            client.batch_score(items, knowledge=Knowledge(passages=[PASSAGE] * 50), timeout=0.05)
        assert client.health() == "SERVING"


def test_a_second_server_on_the_same_folder_or_port_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    """Both refusals come at once, before Ray starts, as one line naming the holder, and leave the first
    server serving (gRPC would otherwise share the port through SO_REUSEPORT and split the traffic)."""
    serve = [sys.executable, "-m", "maskdpo.server.cli", "--judge", "kb", "--default-judge", "kb"]
    same_folder = subprocess.run([*serve, "--port", "0", "--data-dir", str(server.log.parent / "data")],
                                 capture_output=True, text=True, timeout=120)
    assert same_folder.returncode == 1, same_folder.stderr
    assert f"in use by another maskdpo server (process {server.process.pid} " in same_folder.stderr
    assert f"port {server.port}" in same_folder.stderr
    same_port = subprocess.run([*serve, "--port", str(server.port), "--data-dir", str(tmp_path / "data")],
                               capture_output=True, text=True, timeout=120)
    assert same_port.returncode == 1, same_port.stderr
    assert f"cannot listen on 127.0.0.1:{server.port}" in same_port.stderr
    for refused in (same_folder, same_port):
        assert "Traceback" not in refused.stderr and "started a local Ray" not in refused.stderr
    with _client(server) as client:
        result = client.score("Ada Lind's birth year was 1901.", knowledge=Knowledge(facts=FACTS), judge="kb")
    assert [s.label for s in result.answer.sentences] == [common_pb2.SENTENCE_LABEL_OK]


def test_sigterm_drains_calls_in_flight(tmp_path: Path) -> None:
    server = start_server_process(tmp_path)
    try:
        items = [Item(f"Ada Lind was born in {1800 + i} in Oslo. She was a chemist.") for i in range(16)]
        outcome: dict[str, object] = {}

        def call() -> None:
            with _client(server) as client:
                try:
                    outcome["result"] = client.batch_score(items, knowledge=Knowledge(passages=[PASSAGE]))
                except Exception as exc:
                    outcome["error"] = exc

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.3)
        code = server.stop()
        thread.join(60)
        assert code == 0, server.log.read_text()[-2000:]
        assert "error" not in outcome, outcome.get("error")
        assert len(outcome["result"].answers) == 16  # type: ignore[attr-defined]
    finally:
        server.stop()
