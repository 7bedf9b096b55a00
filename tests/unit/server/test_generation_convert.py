"""The generation edge: request validation naming fields, response building, engine error mapping, the
checkpoint registry and the SDK's request builders."""

from __future__ import annotations

import math
from pathlib import Path

import grpc
import pytest

from maskdpo.client import Judging, Knowledge, Sampling, ScoreOptions, deploy_result
from maskdpo.client import errors as sdk_errors
from maskdpo.client._generation import batch_generate_request, generate_request, model_name, sampling_of
from maskdpo.server.edge.names import parse_checkpoint_name
from maskdpo.server.errors import (
    Cancelled,
    CheckpointRejected,
    Conflict,
    InvalidArgument,
    NotFound,
    PromptTooLong,
    QueueFull,
    TextTooLong,
    Unavailable,
    to_service_error,
)
from maskdpo.server.generation import errors as gen_errors
from maskdpo.server.generation.types import GenerationResult, Prompt, Sample, StreamDelta
from maskdpo.server.services import generation_convert as convert
from maskdpo.server.store.checkpoints import CheckpointStore, checkpoint_id
from maskdpo.server.workers.generator_actor import engine_is_dead, service_error
from maskdpo.server.workers.ray_runtime import call_error
from maskdpo.v1 import common_pb2, factuality_pb2, generation_pb2


def test_sampling_defaults() -> None:
    options = convert.sampling(common_pb2.SamplingParams(), "sampling.", 256)
    assert (options.n, options.temperature, options.top_p, options.top_k, options.max_tokens) == (
        1,
        1.0,
        1.0,
        0,
        256,
    )
    assert options.seed is None and not options.logprobs and not options.ignore_eos
    given = common_pb2.SamplingParams(
        n=4,
        temperature=0.0,
        top_p=0.5,
        top_k=5,
        max_tokens=9,
        stop=["\n"],
        seed=3,
        logprobs=True,
        ignore_eos=True,
    )
    options = convert.sampling(given, "sampling.", 256)
    assert (options.n, options.temperature, options.top_p, options.top_k, options.max_tokens) == (
        4,
        0.0,
        0.5,
        5,
        9,
    )
    assert options.stop == ("\n",) and options.seed == 3 and options.logprobs and options.ignore_eos


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"n": 65}, "n"),
        ({"n": -1}, "n"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"stop": [""]}, "stop[0]"),
        ({"stop": ["x"] * 17}, "stop"),
    ],
)
def test_sampling_rejects_out_of_range_fields(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        convert.sampling(common_pb2.SamplingParams(**params), "requests[3].sampling.", 256)  # type: ignore[arg-type]
    assert info.value.field == f"requests[3].sampling.{field}"


def test_prompt_text_and_chat() -> None:
    prompt = convert.prompt(generation_pb2.GenerateRequest(prompt="Hello"), "", 100)
    assert prompt.text == "Hello" and not prompt.messages
    request = generate_request([("system", "Be brief."), ("user", "Hi")])
    prompt = convert.prompt(request, "", 100)
    assert [(m.role, m.content) for m in prompt.messages] == [("system", "Be brief."), ("user", "Hi")]


@pytest.mark.parametrize(
    ("request_", "field", "error"),
    [
        (generation_pb2.GenerateRequest(), "prompt", InvalidArgument),
        (generation_pb2.GenerateRequest(prompt="  "), "prompt", InvalidArgument),
        (generate_request([]), "messages.messages", InvalidArgument),
        (generate_request([("user", "a"), ("robot", "b")]), "messages.messages[1].role", InvalidArgument),
        (generation_pb2.GenerateRequest(prompt="x" * 101), "prompt", TextTooLong),
        (generate_request([("user", "x" * 60), ("user", "y" * 60)]), "messages", TextTooLong),
    ],
)
def test_prompt_errors_name_the_field(
    request_: generation_pb2.GenerateRequest, field: str, error: type[InvalidArgument]
) -> None:
    with pytest.raises(error) as info:
        convert.prompt(request_, "", 100)
    assert info.value.field == field


def test_model_id() -> None:
    assert convert.model_id("models/toy", "model") == "toy"
    assert convert.model_id("toy", "model") == "toy"
    assert convert.model_id("", "model") == ""
    for bad in ("models/", "models/a/b"):
        with pytest.raises(InvalidArgument):
            convert.model_id(bad, "model")


def test_response_and_chunk() -> None:
    samples = (Sample(0, "ab", (5, 6), (-0.5, -1.0), "length", 3), Sample(1, "c", (7,), (-0.1,), "stop", 3))
    result = GenerationResult("r", 11, samples, 3)
    out = convert.generate_response("toy", result, True, lambda ids: [f"<{i}>" for i in ids])
    assert out.model == "models/toy" and out.usage.prompt_tokens == 11 and out.usage.completion_tokens == 3
    assert [(t.token_id, t.token, t.logprob) for t in out.samples[0].tokens] == [
        (5, "<5>", -0.5),
        (6, "<6>", -1.0),
    ]
    assert [s.weight_version for s in out.samples] == [3, 3] and out.samples[1].finish_reason == "stop"
    assert not convert.generate_response("toy", result, False, lambda ids: []).samples[0].tokens
    delta = StreamDelta("r", 1, "x", (9,), (-2.0,), False, "", 4)
    chunk = convert.chunk(delta, True, lambda ids: ["x"])
    assert (chunk.index, chunk.delta, chunk.finish_reason, chunk.weight_version) == (1, "x", "", 4)
    last = convert.chunk(StreamDelta("r", 1, "", (), (), True, "length", 4), False, lambda ids: [])
    assert last.finish_reason == "length"


def test_engine_errors_cross_ray_as_the_service_tree() -> None:
    """The Generator actor raises the service's own exceptions; they pickle, Ray re-raises them wrapped, and
    the edge reports exactly what the actor raised -- no message parsing anywhere."""
    import pickle

    import ray.exceptions

    messages = Prompt.chat([("user", "hi")])
    too_long = service_error(gen_errors.PromptTooLongError(300, 256), "toy", messages)
    assert isinstance(too_long, PromptTooLong) and too_long.field == "messages"
    assert too_long.metadata["limit"] == "255"
    nested = too_long.within("requests[1].")
    assert isinstance(nested, PromptTooLong) and nested.field == "requests[1].messages"
    assert nested.metadata["field"] == "requests[1].messages" and nested.message.startswith("requests[1].messages:")
    invalid = service_error(gen_errors.InvalidRequestError("sampling.top_k", "-3 must be >= 0"), "toy")
    assert isinstance(invalid, InvalidArgument) and invalid.field == "sampling.top_k"
    full = service_error(gen_errors.QueueFullError(2.5, 8), "toy")
    wrapped = ray.exceptions.RayTaskError("generate", "traceback", pickle.loads(pickle.dumps(full)))
    reported = to_service_error(wrapped)
    assert isinstance(reported, QueueFull) and reported.metadata["retry_after_s"] == "2.5"
    assert "models/toy" in reported.message and "traceback" not in reported.message
    dead = service_error(gen_errors.EngineDeadError("gone"), "toy")
    assert isinstance(dead, Unavailable) and engine_is_dead(dead)
    assert engine_is_dead(call_error(ray.exceptions.RayTaskError("generate", "tb", dead), "the engine"))
    aborted = service_error(gen_errors.RequestAbortedError("swap"), "toy")
    assert isinstance(aborted, Unavailable) and not engine_is_dead(aborted)
    assert isinstance(service_error(gen_errors.DeployConflictError("busy"), "toy"), Conflict)
    assert isinstance(service_error(gen_errors.CheckpointError("truncated"), "toy"), CheckpointRejected)
    assert isinstance(service_error(gen_errors.VerificationError("diff"), "toy"), CheckpointRejected)
    assert isinstance(call_error(ray.exceptions.TaskCancelledError(), "the engine"), Cancelled)
    assert isinstance(call_error(ray.exceptions.RayActorError(), "the engine"), Unavailable)
    bug = KeyError("bug")
    assert call_error(bug, "the engine") is bug  # not ours: the edge reports an internal error


def test_checkpoint_registry(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "models.sqlite")
    base = store.reset("toy", Path("/m/base"))
    assert (base.name, base.weight_version) == ("models/toy/checkpoints/base", 1)
    first = store.served("toy", Path("/ckpt/round-1"), 2)
    assert first.id == checkpoint_id(Path("/ckpt/round-1")) and first.id.startswith("round-1-")
    again = store.served("toy", Path("/ckpt/round-1"), 4)
    assert again.id == first.id and again.weight_version == 4
    records, more = store.page("toy", 0, 1)
    assert [r.id for r in records] == [first.id] and more
    assert store.get("toy", "base").path == Path("/m/base")
    with pytest.raises(NotFound):
        store.get("toy", "nope")
    store.close()
    reopened = CheckpointStore(tmp_path / "models.sqlite")  # a restart: only the base is served
    reopened.reset("toy", Path("/m/base"))
    assert {r.id: r.weight_version for r in reopened.page("toy", 0, 10)[0]} == {"base": 1, first.id: 0}
    assert parse_checkpoint_name("models/toy/checkpoints/base", "checkpoint") == ("toy", "base")
    with pytest.raises(InvalidArgument):
        parse_checkpoint_name("models/toy/base", "checkpoint")


def test_sdk_request_builders() -> None:
    assert (
        model_name("toy") == "models/toy"
        and model_name("models/toy") == "models/toy"
        and model_name("") == ""
    )
    sampling = sampling_of(Sampling(n=2, temperature=0.5), {"max_tokens": 7, "logprobs": True})
    proto = generate_request("Hi", model="toy", sampling=sampling)
    assert proto.model == "models/toy" and proto.prompt == "Hi"
    assert proto.sampling.n == 2 and proto.sampling.temperature == 0.5 and proto.sampling.max_tokens == 7
    assert (
        proto.sampling.logprobs
        and not proto.sampling.HasField("top_p")
        and not proto.sampling.HasField("seed")
    )
    with pytest.raises(TypeError, match="unknown sampling options"):
        sampling_of(None, {"temprature": 1.0})


def test_failed_operation_raises_its_typed_error() -> None:
    from google.longrunning import operations_proto_pb2

    op = operations_proto_pb2.Operation(name="operations/x", done=True)
    op.error.CopyFrom(CheckpointRejected("rolled back: max |diff| 0.4").to_status())
    with pytest.raises(sdk_errors.FailedPreconditionError) as info:
        deploy_result(op)
    assert (
        info.value.reason == "CHECKPOINT_REJECTED" and info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    )
    with pytest.raises(ValueError, match="still running"):
        deploy_result(operations_proto_pb2.Operation(name="operations/y"))


def test_generation_settings() -> None:
    from pydantic import ValidationError

    from maskdpo.server.settings import load_settings

    settings = load_settings(None, models={"toy": "toyworld/maskdpo/toyworld/model", "smollm2": "builtin:smollm2"})
    assert settings.models["smollm2"] == "builtin:smollm2" and settings.default_model == ""
    for bad in (
        {"models": {"Bad Name": "x"}},
        {"models": {"toy": " "}},
        {"models": {"toy": "x"}, "default_model": "other"},
        {"generator_max_num_seqs": 0},
    ):
        with pytest.raises(ValidationError):
            load_settings(None, **bad)


def test_serve_cli_rejects_a_malformed_model_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from maskdpo.server.cli import main

    assert main(["--model", "toy"]) == 2
    assert "expected NAME=FOLDER" in capsys.readouterr().err


BEST_OF_LIMIT = 16


@pytest.mark.parametrize(
    ("fields", "streaming", "field", "words"),
    [
        ({"best_of": -1}, False, "best_of", "between 1 and 16"),
        ({"best_of": BEST_OF_LIMIT + 1}, False, "best_of", "between 1 and 16"),
        ({"best_of": 4, "sampling": common_pb2.SamplingParams(n=4)}, False, "sampling.n", "leave it unset"),
        ({"best_of": 4, "sampling": common_pb2.SamplingParams(temperature=0.0)}, False, "sampling.temperature",
         "greedy"),
        ({"judging": generation_pb2.Judging(judge="kb")}, False, "judging", "set best_of"),
        ({"best_of": 2}, True, "best_of", "use Generate"),
    ],
)
def test_best_of_is_checked_against_the_limit_and_the_request(
    fields: dict[str, object], streaming: bool, field: str, words: str
) -> None:
    request = generation_pb2.GenerateRequest(prompt="Hi", **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=words) as info:
        convert.best_of(request, "requests[1].", BEST_OF_LIMIT, streaming)
    assert info.value.field == f"requests[1].{field}"


def test_best_of_accepted() -> None:
    def best_of(streaming: bool = False, **fields: object) -> int:
        request = generation_pb2.GenerateRequest(prompt="Hi", **fields)  # type: ignore[arg-type]
        return convert.best_of(request, "", BEST_OF_LIMIT, streaming)

    assert best_of() == 0 and best_of(streaming=True, judging=generation_pb2.Judging()) == 0
    assert best_of(best_of=BEST_OF_LIMIT, sampling=common_pb2.SamplingParams(n=1)) == BEST_OF_LIMIT
    assert best_of(best_of=1, sampling=common_pb2.SamplingParams(temperature=0.0)) == 1  # one greedy answer


def test_the_question_judges_read() -> None:
    assert convert.question(generation_pb2.GenerateRequest(prompt="Tell me")) == "Tell me"
    chat = generate_request([("system", "Be brief."), ("user", "First"), ("assistant", "A"), ("user", "Second")])
    assert convert.question(chat) == "Second"
    assert convert.question(generate_request([("system", "Be brief.")])) == ""


def test_rank_by_is_checked() -> None:
    def rank_by(best: int, value: str) -> str:
        request = generation_pb2.GenerateRequest(best_of=best, judging=generation_pb2.Judging(rank_by=value))
        return convert.rank_by(request, "requests[2].", best)

    assert rank_by(4, "") == "anah_score" and rank_by(4, "f1_at_k") == "f1_at_k" and rank_by(0, "") == "anah_score"
    with pytest.raises(InvalidArgument, match="one of anah_score, f1_at_k") as bad:
        rank_by(4, "length")
    assert bad.value.field == "requests[2].judging.rank_by"
    with pytest.raises(InvalidArgument, match="set best_of"):
        rank_by(0, "f1_at_k")


def test_ranked_orders_the_samples_and_keeps_their_draw_index() -> None:
    samples = tuple(Sample(i, f"text {i}", (i,), (), "stop", 2) for i in range(3))
    response = convert.generate_response("toy", GenerationResult("r", 5, samples, 2), False, lambda ids: [])
    judged = [factuality_pb2.ScoredAnswer(metrics=factuality_pb2.AnswerMetrics(facts=i)) for i in range(3)]
    judge = common_pb2.JudgeIdentity(backend="kb")
    convert.ranked(response, judged, [2, 0, 1], judge)
    assert [(s.index, s.text, s.judged.metrics.facts) for s in response.samples] == [
        (2, "text 2", 2), (0, "text 0", 0), (1, "text 1", 1)]
    assert response.judge == judge and response.usage.completion_tokens == 3


def test_sdk_judged_requests() -> None:
    judging = Judging(judge="kb", topic="Ada", knowledge=Knowledge(facts=[("Ada", "birthplace", "Oslo")]),
                      options=ScoreOptions(mask_rule="released"), rank_by="f1_at_k")
    proto = generate_request("Hi", best_of=8, judging=judging)
    assert proto.best_of == 8 and proto.judging.judge == "kb" and proto.judging.topic == "Ada"
    assert proto.judging.rank_by == "f1_at_k"
    assert proto.judging.knowledge.facts.facts[0].value == "Oslo"
    assert proto.judging.options.mask_rule == common_pb2.MASK_RULE_RELEASED
    plain = generate_request("Hi")
    assert plain.best_of == 0 and not plain.HasField("judging")
    batch = batch_generate_request(["Hi", [("user", "Who?")]], model="toy", best_of=4, judging=judging)
    assert [(r.model, r.best_of, r.judging.topic) for r in batch.requests] == [("models/toy", 4, "Ada")] * 2
    assert batch.requests[1].messages.messages[0].content == "Who?"
    assert not any(r.HasField("judging") for r in batch_generate_request(["Hi", "Ho"]).requests)
