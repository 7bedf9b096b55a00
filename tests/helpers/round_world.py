"""A tiny hand-built knowledge base and prompt set for round tests on the tiny test model.

The ``kb`` judge here uses a cue extractor: a sentence containing a place's or a job's two-letter cue
(``"lo"`` for London, ``"ph"`` for physicist, ...) makes the claim that the topic person was born there /
does that job. The random tiny model writes byte soup, in which such cues are frequent, so its samples
get varied labels and rounds build real preference pairs; the kb judge itself is the real one. Importing this module
registers the judge backend ``tiny-cues`` and the datasets ``tiny/train`` and ``tiny/eval`` (in this process).
"""

from __future__ import annotations

from maskdpo.server.judge import registry
from maskdpo.server.judge.kb import KbJudge, KnowledgeBase
from maskdpo.server.judge.types import Fact, JudgeBackend
from maskdpo.server.rounds import datasets
from maskdpo.server.rounds.config import PromptItem

PEOPLE = {
    "Ada Lovelace": ("London", "writer"),
    "Alan Turing": ("Paris", "mathematician"),
    "Marie Curie": ("Zürich", "physicist"),
    "Émile Zola": ("Kraków", "coach"),
    "Jürgen Klopp": ("Reykjavík", "philosopher"),
    "Søren Kierkegaard": ("London", "painter"),
}
PLACES = {"London": "lo", "Paris": "ri", "Zürich": "ür", "Kraków": "ra", "Reykjavík": "av", "São Paulo": "ul"}
JOBS = {
    "writer": "er",
    "mathematician": "at",
    "physicist": "ph",
    "coach": "oa",
    "philosopher": "il",
    "painter": "in",
}


class CueExtractor:
    name = "tiny-cues"

    def extract(self, sentence: str, topic: str) -> list[Fact]:
        claims = [Fact(topic, "birthplace", p) for p, cue in PLACES.items() if cue in sentence]
        return claims + [Fact(topic, "occupation", j) for j, cue in JOBS.items() if cue in sentence]


def facts() -> list[Fact]:
    out = []
    for name, (place, job) in PEOPLE.items():
        out += [Fact(name, "birthplace", place), Fact(name, "occupation", job)]
    return out


def judge() -> JudgeBackend:
    return KbJudge(KnowledgeBase(facts()), CueExtractor(), source_name="tiny-bios")


def items(names: list[str]) -> tuple[PromptItem, ...]:
    return tuple(
        PromptItem(f"Tell me a bio of {n}.", n, tuple(f for f in facts() if f.subject == n)) for n in names
    )


names = list(PEOPLE)
JUDGE = "tiny-cues"
registry.register(JUDGE, judge)
datasets.register("tiny/train", lambda: items(names[:4]), judge=JUDGE)
datasets.register("tiny/eval", lambda: items(names), judge=JUDGE)
