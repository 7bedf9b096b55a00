"""Claim extraction and exact labelling of toy-world sentences, with planted errors."""

from __future__ import annotations

import random

import pytest

from maskdpo.server.judge.types import Fact
from maskdpo.toyworld import bio_templates as T
from maskdpo.toyworld.corpus import CorpusConfig, build_corpus, person_values
from maskdpo.toyworld.world import ATTRIBUTES, World
from maskdpo.toyworld.world_judge import WorldLabeler
from maskdpo.trainer.labels import SentenceLabel


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate()


@pytest.fixture(scope="module")
def labeler(world: World) -> WorldLabeler:
    return WorldLabeler(world)


def _subjects(person) -> list[tuple[str, str]]:
    pronoun, poss = ("She", "Her") if person.gender == "f" else ("He", "His")
    return [(person.name, f"{person.name}'s"), (person.given, f"{person.given}'s"), (pronoun, poss)]


def test_every_corpus_sentence_is_ok_or_nofact(world: World, labeler: WorldLabeler) -> None:
    labels = []
    for row in build_corpus(world, CorpusConfig(seed=5))[:400]:
        labels += [s.label for s in labeler.label_response(row["messages"][1]["content"], row["topic"])]
    assert set(labels) == {SentenceLabel.OK, SentenceLabel.NOFACT}


def test_every_template_parses_to_its_claims(world: World, labeler: WorldLabeler) -> None:
    index = world.by_name()
    person = next(p for p in world.people if set(p.attributes) == set(ATTRIBUTES))
    values = person_values(person, index)
    for template in T.ALL_FACT_TEMPLATES:
        for subject, poss in _subjects(person):
            sentence = T.render(template, subject, poss, values)
            claims = labeler.extractor.extract(sentence, person.name)
            assert claims == [Fact(person.name, a, values[a]) for a in template.attributes], sentence
            assert labeler.label_sentence(sentence, person.name) is SentenceLabel.OK
    for template in T.FILLER_TEMPLATES:
        sentence = T.render(template, "She", "Her", values)
        assert labeler.extractor.extract(sentence, person.name) == []


def test_planted_errors_are_labelled_exactly(world: World, labeler: WorldLabeler) -> None:
    rng = random.Random(0)
    index = world.by_name()
    seen = {label: 0 for label in SentenceLabel}
    for person in rng.sample(world.split("heldout"), 60):
        true_values = person_values(person, index)
        for template in T.ALL_FACT_TEMPLATES + T.FILLER_TEMPLATES:
            subject, poss = rng.choice(_subjects(person))
            attrs = template.attributes
            if not attrs:
                expected, values = SentenceLabel.NOFACT, true_values
            elif any(a not in person.attributes for a in attrs):
                donor = rng.choice([p for p in world.people if all(a in p.attributes for a in attrs)])
                values = {**true_values, **{a: donor.value(a) for a in attrs}, "sibling_word": "sister"}
                expected = SentenceLabel.UNVERIFIABLE
                if any(a in person.attributes and values[a] != true_values[a] for a in attrs):
                    expected = SentenceLabel.CONTRADICTORY
            elif rng.random() < 0.5:
                expected, values = SentenceLabel.OK, true_values
            else:
                swapped = rng.choice(attrs)
                donor = rng.choice(
                    [p for p in world.people if p.value(swapped) not in (None, true_values[swapped])]
                )
                values = {**true_values, swapped: donor.value(swapped)}
                expected = SentenceLabel.CONTRADICTORY
            sentence = T.render(template, subject, poss, values)
            assert labeler.label_sentence(sentence, person.name) is expected, sentence
            seen[expected] += 1
    assert all(count > 20 for count in seen.values()), seen


@pytest.mark.parametrize(
    ("sentence", "label"),
    [
        ("Later in life, she studied at {school} and works at {employer}.", SentenceLabel.OK),
        ("She is famous for nothing in particular, born around 1750.", SentenceLabel.UNVERIFIABLE),
        ("She worked closely with {city} people.", SentenceLabel.UNVERIFIABLE),
        ("She was kind to everyone.", SentenceLabel.NOFACT),
        ("", SentenceLabel.NOFACT),
        ("Someone Else was born in 1901.", SentenceLabel.UNVERIFIABLE),
    ],
)
def test_model_like_sentences(
    world: World, labeler: WorldLabeler, sentence: str, label: SentenceLabel
) -> None:
    person = next(p for p in world.people if "employer" in p.attributes and "school" in p.attributes)
    text = sentence.format(
        school=person.value("school"), employer=person.value("employer"), city=person.value("birthplace")
    )
    assert labeler.label_sentence(text, person.name) is label


def test_the_wrong_values_are_marked_and_masked_alone(world: World, labeler: WorldLabeler) -> None:
    """A swapped value is marked where it stands, and a claim-level rejected mask on the toy model's own
    tokenizer keeps exactly its tokens."""
    from transformers import AutoTokenizer

    from maskdpo.toyworld.train_model import DEFAULT_OUT
    from maskdpo.trainer.joint import completion_mask
    from maskdpo.trainer.token_masks import MaskConfig, MaskUnit, Role

    tok = AutoTokenizer.from_pretrained(DEFAULT_OUT)
    rng = random.Random(1)
    index = world.by_name()
    checked = 0
    for person in rng.sample([p for p in world.people if "employer" in p.attributes], 20):
        values = person_values(person, index)
        template = rng.choice([t for t in T.ALL_FACT_TEMPLATES if len(t.attributes) == 2
                               and all(a in person.attributes for a in t.attributes)])
        swapped = rng.choice(template.attributes)
        donor = next(p for p in world.people if p.value(swapped) not in (None, values[swapped]))
        wrong = donor.value(swapped)
        assert wrong is not None
        text = T.render(template, "She", "Her", {**values, swapped: wrong}) + " " + T.render(
            template, "She", "Her", values)
        [sentence, right] = labeler.label_response(text, person.name)
        assert [w.text_of(text) for w in sentence.wrong_spans] == [wrong] and right.wrong_spans == ()
        joint, result = completion_mask(tok, [{"role": "user", "content": "Tell me a bio."}], text,
                                        [sentence, right], Role.REJECTED,
                                        MaskConfig(end_of_turn="drop", unit=MaskUnit.CLAIM))
        kept = [t for t, m in zip(joint.ids[joint.prompt_len:], result.mask, strict=True) if m]
        assert tok.decode(kept).strip() == wrong, (text, tok.decode(kept))
        checked += 1
    assert checked == 20
