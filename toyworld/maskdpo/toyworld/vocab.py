"""Closed vocabularies of the toy world and a maker of unique fictional names from syllables.

Every name the world uses (people, cities, academies, organisations, works) comes from a
:class:`NameMaker` driven by the world's own ``random.Random``, so the same seed gives the same names.
"""

from __future__ import annotations

import random

TRADES: tuple[str, ...] = (
    "painter",
    "engineer",
    "chemist",
    "architect",
    "novelist",
    "violinist",
    "surgeon",
    "botanist",
    "cartographer",
    "sculptor",
    "astronomer",
    "journalist",
    "lawyer",
    "baker",
    "pilot",
    "mathematician",
)

_ORG_KIND: dict[str, tuple[str, ...]] = {
    "painter": ("Studio", "Gallery"),
    "engineer": ("Works", "Engineering"),
    "chemist": ("Laboratories", "Chemicals"),
    "architect": ("Architects", "Design"),
    "novelist": ("Press", "Publishing"),
    "violinist": ("Orchestra", "Ensemble"),
    "surgeon": ("Hospital", "Clinic"),
    "botanist": ("Gardens", "Herbarium"),
    "cartographer": ("Survey", "Maps"),
    "sculptor": ("Workshop", "Foundry"),
    "astronomer": ("Observatory", "Institute"),
    "journalist": ("Gazette", "Herald"),
    "lawyer": ("Chambers", "Partners"),
    "baker": ("Bakery", "Mills"),
    "pilot": ("Airways", "Aviation"),
    "mathematician": ("Academy", "Society"),
}

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "th", "br", "dr", "kr", "tr")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ei", "ou")
_CODAS = ("", "", "", "n", "r", "l", "s")
_GIVEN_END = {"f": ("a", "ia", "elle", "ine", "is"), "m": ("o", "an", "ek", "ir", "us")}
_SURNAME_END = ("ward", "ley", "mont", "ric", "ven", "dal", "holm", "ton", "sby", "rath")
_CITY_END = ("ford", "haven", "mere", "port", "dale", "wick", "bury", "stead")
_ACADEMY_KIND = ("Academy", "Conservatory", "Polytechnic", "College")
_WORK_ADJ = (
    "Silent",
    "Golden",
    "Hidden",
    "Broken",
    "Distant",
    "Quiet",
    "Crimson",
    "Winter",
    "Hollow",
    "Burning",
    "Silver",
    "Lonely",
    "Northern",
    "Endless",
    "Fading",
    "Bright",
    "Salt",
    "Iron",
    "Glass",
    "Wandering",
)
_WORK_NOUN = (
    "River",
    "Garden",
    "Tower",
    "Harbour",
    "Mirror",
    "Lantern",
    "Orchard",
    "Bridge",
    "Meadow",
    "Compass",
    "Island",
    "Kingdom",
    "Letter",
    "Voyage",
    "Shadow",
    "Season",
    "Crown",
    "Forest",
    "Song",
    "Road",
)


class NameMaker:
    """Draws unique names from syllable vocabularies; never returns the same string twice."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def _syllable(self) -> str:
        return self._rng.choice(_ONSETS) + self._rng.choice(_VOWELS) + self._rng.choice(_CODAS)

    def _unique(self, make: object) -> str:
        assert callable(make)
        for _ in range(10_000):
            name = make()
            if name not in self._used:
                self._used.add(name)
                return str(name)
        raise RuntimeError("name vocabulary exhausted; enlarge the syllable lists")

    def given(self, gender: str, exclude: set[str]) -> str:
        """A given name; given names repeat across families but never within one (``exclude``)."""
        if gender not in _GIVEN_END:
            raise ValueError(f"gender must be 'f' or 'm', got {gender!r}")
        for _ in range(10_000):
            name = (self._syllable() + self._rng.choice(_GIVEN_END[gender])).capitalize()
            if name not in exclude and len(name) <= 8:
                return name
        raise RuntimeError("given-name vocabulary exhausted")

    def surname(self) -> str:
        return self._unique(lambda: (self._syllable() + self._rng.choice(_SURNAME_END)).capitalize())

    def city(self) -> str:
        return self._unique(lambda: (self._syllable() + self._rng.choice(_CITY_END)).capitalize())

    def academy(self) -> str:
        return self._unique(
            lambda: f"{(self._syllable() + self._syllable()).capitalize()} {self._rng.choice(_ACADEMY_KIND)}"
        )

    def org(self, trade: str) -> str:
        kind = self._rng.choice(_ORG_KIND[trade])
        return self._unique(lambda: f"{(self._syllable() + self._syllable()).capitalize()} {kind}")

    def work(self) -> str:
        def make() -> str:
            title = f"The {self._rng.choice(_WORK_ADJ)} {self._rng.choice(_WORK_NOUN)}"
            if self._rng.random() < 0.5:
                title += f" of {(self._syllable() + self._rng.choice(_CITY_END)).capitalize()}"
            return title

        return self._unique(make)
