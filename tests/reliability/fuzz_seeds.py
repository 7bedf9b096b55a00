"""What the fuzzer (tests/reliability/test_fuzz.py) knows of the service: one valid request per RPC to
mutate field by field, and strings that mean something in a field of a given name.

Each seed passes validation on the toy server, and none starts expensive work: the deploy names a folder
that does not exist, the round names a start round that does not exist, generation asks for a few tokens
(Generate as best-of-2 and StreamGenerate with judging, so their judging paths are fuzzed too).
"""

from __future__ import annotations

from google.longrunning import operations_proto_pb2
from google.protobuf import duration_pb2
from google.protobuf.message import Message

from maskdpo.v1 import alignment_pb2, common_pb2, factuality_pb2, generation_pb2, models_pb2
from tests.reliability.proto_strategies import ANY_FIELD

MODEL = "models/toy"
SOURCE_ID = "fuzz-source"
ROUND = "rounds/0123abcd"
MISSING_ROUND = "rounds/" + "f" * 32
OPERATION = "operations/0123abcd"
ANSWER = factuality_pb2.Answer(
    response="Ada Lind was born in 1901 in Oslo. She was a chemist.",
    topic="Ada Lind",
    prompt="Who was Ada Lind?",
    groups=["rare"],
)
FACTS = factuality_pb2.Knowledge(
    facts=factuality_pb2.FactList(
        facts=[
            factuality_pb2.Fact(subject="Ada Lind", attribute="birth_year", value="1901"),
            factuality_pb2.Fact(subject="Ada Lind", attribute="birthplace", value="Oslo"),
        ]
    )
)
PASSAGES = factuality_pb2.Knowledge(
    passages=factuality_pb2.PassageList(
        passages=[
            factuality_pb2.Passage(
                title="Ada Lind", text="Ada Lind (born 1901 in Oslo) was a Norwegian chemist."
            )
        ]
    )
)
GENERATE = generation_pb2.GenerateRequest(
    model=MODEL,
    messages=generation_pb2.ChatMessages(
        messages=[common_pb2.ChatMessage(role="user", content="Who was Ada Lind?")]
    ),
    sampling=common_pb2.SamplingParams(
        n=2, max_tokens=8, temperature=0.7, seed=1, logprobs=True, stop=["\n\n"]
    ),
)
JUDGING = generation_pb2.Judging(judge="kb", knowledge=FACTS, topic="Ada Lind",
                                 options=factuality_pb2.ScoreOptions(mask_rule=common_pb2.MASK_RULE_RELEASED))
BEST_OF = generation_pb2.GenerateRequest(
    model=MODEL, messages=GENERATE.messages, best_of=2, judging=JUDGING,
    sampling=common_pb2.SamplingParams(max_tokens=8, temperature=0.7, logprobs=True),
)
JUDGED_STREAM = generation_pb2.GenerateRequest(model=MODEL, messages=GENERATE.messages, sampling=GENERATE.sampling,
                                               judging=JUDGING)
ROUND_CONFIG = alignment_pb2.RoundConfig(
    model=MODEL,
    prompts=alignment_pb2.PromptSet(
        prompts=alignment_pb2.PromptList(
            prompts=[alignment_pb2.RoundPrompt(prompt="Who was Ada Lind?", topic="Ada Lind", knowledge=FACTS)]
        )
    ),
    eval_prompts=alignment_pb2.PromptSet(dataset="toyworld/validation", limit=2),
    samples_per_prompt=2,
    judge="kb",
    start_from_round=MISSING_ROUND,
    seed=1,
)

SEEDS: dict[str, Message] = {
    "Score": factuality_pb2.ScoreRequest(
        judge="kb",
        answer=ANSWER,
        knowledge=FACTS,
        options=factuality_pb2.ScoreOptions(mask_rule=common_pb2.MASK_RULE_DEFAULT),
    ),
    "BatchScore": factuality_pb2.BatchScoreRequest(
        judge="heuristic",
        knowledge=PASSAGES,
        items=[
            factuality_pb2.ScoreItem(answer=ANSWER),
            factuality_pb2.ScoreItem(answer=ANSWER, knowledge=PASSAGES),
        ],
        options=factuality_pb2.ScoreOptions(bootstrap_resamples=50, bootstrap_seed=3, f1_k=2),
    ),
    "ListJudges": factuality_pb2.ListJudgesRequest(),
    "CreateKnowledgeSource": factuality_pb2.CreateKnowledgeSourceRequest(
        knowledge_source_id=SOURCE_ID,
        description="fuzzing",
        facts=FACTS.facts.facts,
        passages=PASSAGES.passages.passages,
    ),
    "GetKnowledgeSource": factuality_pb2.GetKnowledgeSourceRequest(name=f"knowledgeSources/{SOURCE_ID}"),
    "ListKnowledgeSources": factuality_pb2.ListKnowledgeSourcesRequest(page_size=2),
    "DeleteKnowledgeSource": factuality_pb2.DeleteKnowledgeSourceRequest(
        name=f"knowledgeSources/{SOURCE_ID}"
    ),
    "Generate": BEST_OF,
    "BatchGenerate": generation_pb2.BatchGenerateRequest(
        requests=[GENERATE, generation_pb2.GenerateRequest(prompt="Ada Lind was", sampling=GENERATE.sampling)]
    ),
    "StreamGenerate": JUDGED_STREAM,
    "ListModels": models_pb2.ListModelsRequest(page_size=1),
    "GetModel": models_pb2.GetModelRequest(name=MODEL),
    "ListCheckpoints": models_pb2.ListCheckpointsRequest(parent=MODEL, page_size=5),
    "DeployCheckpoint": models_pb2.DeployCheckpointRequest(
        model=MODEL, checkpoint="/nonexistent/checkpoint", verify_tolerance=0.1, request_id="fuzz"
    ),
    "CreateAlignmentRound": alignment_pb2.CreateAlignmentRoundRequest(config=ROUND_CONFIG, request_id="fuzz"),
    "GetAlignmentRound": alignment_pb2.GetAlignmentRoundRequest(name=ROUND),
    "ListAlignmentRounds": alignment_pb2.ListAlignmentRoundsRequest(page_size=5, model=MODEL),
    "WatchAlignmentRound": alignment_pb2.WatchAlignmentRoundRequest(name=ROUND, after_sequence=1),
    "CancelAlignmentRound": alignment_pb2.CancelAlignmentRoundRequest(name=ROUND),
    "GetOperation": operations_proto_pb2.GetOperationRequest(name=OPERATION),
    "ListOperations": operations_proto_pb2.ListOperationsRequest(filter="kind=deploy", page_size=5),
    "CancelOperation": operations_proto_pb2.CancelOperationRequest(name=OPERATION),
    "DeleteOperation": operations_proto_pb2.DeleteOperationRequest(name=OPERATION),
    "WaitOperation": operations_proto_pb2.WaitOperationRequest(
        name=OPERATION, timeout=duration_pb2.Duration(nanos=1000)
    ),
}

TEXT = ("Ada Lind was born in 1901 in Oslo. She was a chemist.", "Who was Ada Lind?", "Ada Lind")
HINTS = {  # strings that mean something in a field of that name, so that generated messages get further
    ANY_FIELD: ("models/toy", "kb", "/", "1", "knowledgeSources/fuzz-source", "rounds/0123abcd"),
    "name": (
        "knowledgeSources/fuzz-source",
        "rounds/0123abcd",
        "rounds/",
        "operations/0123abcd",
        "models/toy",
    ),
    "parent": ("models/toy", "toy", "models/absent", "models/toy/"),
    "model": ("models/toy", "toy", "models/absent", "models/", "models/toy/checkpoints/x"),
    "judge": ("kb", "heuristic", "llm"),
    "knowledge_source": ("knowledgeSources/fuzz-source", "knowledgeSources/absent", "knowledgeSources/"),
    "knowledge_source_id": ("fuzz-source", "fuzz-other", "Fuzz", "a" * 64),
    "checkpoint": (
        "/",
        "/nonexistent/checkpoint",
        "relative/folder",
        "models/toy/checkpoints/absent",
        "models/absent/checkpoints/x",
    ),
    "dataset": ("toyworld/alignment", "toyworld/validation", "absent"),
    "role": ("user", "assistant", "system"),
    "filter": ("kind=deploy", "kind=round", "kind=", "state=done"),
    "page_token": ("1", "50", "999999999999", "-1"),
    "metric": ("anah_score", "factscore"),
    **dict.fromkeys(
        (
            "prompt",
            "response",
            "content",
            "text",
            "topic",
            "title",
            "subject",
            "attribute",
            "value",
            "description",
            "stop",
        ),
        TEXT,
    ),
}
