"""The heuristic judge's text rules: items, filler, loose matching, conflicts."""

from __future__ import annotations

import pytest

from maskdpo.server.judge.checkable_items import analyse, is_filler, words_match
from maskdpo.server.judge.mismatch import find_conflict, missing_items


def kinds(text: str) -> list[tuple[str, str]]:
    return [(item.kind, item.value) for item in analyse(text).items]


def test_items_numbers_years_months_entities() -> None:
    assert kinds("Marta Velloso was born on 12 March 1961 in Porto.") == [
        ("entity", "marta velloso"),
        ("number", "12"),
        ("month", "3"),
        ("year", "1961"),
        ("entity", "porto"),
    ]
    assert kinds("About 6,200 people live on the western coast.") == [
        ("number", "6200"),
        ("direction", "west"),
    ]
    assert kinds("She has written five books.") == [("number", "5")]
    assert kinds("She studied at the Royal College of Music.") == [("entity", "royal college music")]
    assert kinds("It was bought by the Dutch group Brandt Holdings.") == [
        ("nationality", "dutch"),
        ("entity", "brandt holding"),
    ]


def test_sentence_initial_word_is_an_entity_only_with_evidence() -> None:
    assert kinds("Tourism is one of the main industries.") == []
    assert kinds("Kestrel Bay is a town.") == [("entity", "kestrel bay")]
    assert kinds("Velloso joined the institute.") == []
    assert [i.value for i in analyse("Velloso joined the institute.", {"velloso"}).items] == ["velloso"]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("finland", "finnish", True), ("america", "american", True), ("florida", "mississippi", False),
     ("johnson", "johnston", False), ("netherland", "dutch", True)],
)  # fmt: skip
def test_words_match(a: str, b: str, same: bool) -> None:
    assert words_match(a, b) is same


@pytest.mark.parametrize(
    ("text", "filler"),
    [("I hope this helps.", True), ("Let me know if you need more.", True), ("It is truly lovely.", True),
     ("Here is a short summary of the battle.", True), ("He married twice.", False),
     ("He was born in 1950.", False), ("Tobias Renfrew is great.", True), ("He lived in Paris.", False)],
)  # fmt: skip
def test_filler_rule(text: str, filler: bool) -> None:
    assert is_filler(analyse(text), frozenset({"tobias", "renfrew", "battle"})) is filler


def test_conflict_needs_a_shared_context() -> None:
    topic = frozenset({"tobias", "renfrew"})
    chunk = analyse("Tobias Renfrew was an American architect born in Pensacola, Mississippi.")
    claim = analyse("He was born in Pensacola, Florida.")
    missing = missing_items(claim, [chunk], topic)
    assert [m.value for m in missing] == ["florida"]
    conflict = find_conflict(claim, missing, chunk, topic, 4, related=True)
    assert conflict is not None and (conflict.claim, conflict.evidence) == ("Florida", "Mississippi")
    other = analyse("He later lived in Texas with his family.")
    missing = missing_items(other, [chunk], topic)
    assert find_conflict(other, missing, chunk, topic, 4, related=True) is None
