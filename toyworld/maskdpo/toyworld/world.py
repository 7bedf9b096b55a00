"""The toy world: fictional people with attributes, generated deterministically from a seed.

Structure the model can generalise over (a small knowledge graph):

- The world has regions; each region has cities, each city a university, each region academies and
  organisations (an organisation has a trade and a city).
- A family (one surname) lives in a region and has a home city, a home organisation (most families) and a
  base birth year. Its members were mostly born in the home city, mostly work for the home organisation
  (so they share employer, trade and city) and mostly studied in the home city; birth years scatter around
  the family's base year. Knowing a family therefore tells a lot about its rare members -- but not all.
- A notable work is unique to its person; siblings are members of the same family.
- Popularity (how many corpus documents mention a person) is long-tailed; independent of the family by
  default, or shared within families (``family_fame``).

People are split into alignment / validation / held-out sets with equal counts per popularity bucket.
Held-out and validation people are tagged ``near`` (a member of their family is in the alignment set) or
``far`` (from a region no alignment person comes from, so they share no family, organisation, city or
school with any of them).

Usage: ``World.generate(WorldConfig(seed=0))``; everything depends only on the config (its own
``random.Random``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from maskdpo.toyworld import vocab

ATTRIBUTES: tuple[str, ...] = (
    "birth_year",
    "birthplace",
    "occupation",
    "employer",
    "school",
    "notable_work",
    "sibling",
)
"""Every attribute a person may hold, in the canonical order biographies follow."""

BUCKETS: tuple[str, ...] = ("frequent", "medium", "rare")


@dataclass(frozen=True)
class WorldConfig:
    """Everything the world depends on."""

    seed: int = 0
    regions: int = 4
    cities_per_region: int = 5
    academies_per_region: int = 2
    orgs_per_region: int = 12
    families: int = 360
    max_family_size: int = 6
    p_home_city: float = 0.85
    p_family_org: float = 0.75
    p_home_org: float = 0.8
    p_employed: float = 0.9
    p_home_school: float = 0.7
    p_school: float = 0.85
    p_notable_work: float = 0.6
    p_sibling: float = 0.7
    year_spread: int = 12
    max_docs: int = 40
    """Popularity: documents per person are log-uniform in 1..max_docs."""
    family_fame: float = 0.0
    """Weight of the family in a person's popularity: 0 draws each person's popularity independently, 1
    gives every member of a family the same (famous families, obscure families); in between mixes a
    family draw with a personal one. Real corpora are like that: relatives of well-known people are
    written about more, so a model can tell from the surname how much it is likely to know."""
    rare_max_docs: int = 2
    frequent_min_docs: int = 10
    alignment_per_bucket: int = 100
    validation_per_bucket: int = 30
    heldout_per_bucket: int = 60

    def __post_init__(self) -> None:
        if self.regions < 2:
            raise ValueError("WorldConfig.regions must be >= 2 (one region is kept far from alignment)")
        for name in ("p_home_city", "p_family_org", "p_home_org", "p_employed", "p_home_school"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorldConfig.{name} must lie in [0, 1], got {value}")
        if not 0.0 <= self.family_fame <= 1.0:
            raise ValueError(f"WorldConfig.family_fame must lie in [0, 1], got {self.family_fame}")
        if not 1 <= self.rare_max_docs < self.frequent_min_docs <= self.max_docs:
            raise ValueError("WorldConfig needs 1 <= rare_max_docs < frequent_min_docs <= max_docs")


@dataclass
class Person:
    """One fictional person. ``attributes`` maps an attribute to its values (siblings may be several)."""

    name: str
    given: str
    surname: str
    gender: str
    """``f`` or ``m``: chooses pronouns only; not a fact the judge checks."""
    family: int
    region: int
    docs: int
    attributes: dict[str, list[str]] = field(default_factory=dict)
    bucket: str = ""
    split: str = "background"
    """``alignment``, ``validation``, ``heldout`` or ``background`` (in the corpus only)."""
    proximity: str = ""
    """For validation / held-out people: ``near`` or ``far`` from the alignment set."""

    def value(self, attribute: str) -> str | None:
        values = self.attributes.get(attribute)
        return values[0] if values else None


@dataclass
class Organisation:
    name: str
    trade: str
    city: str
    region: int


@dataclass
class World:
    config: WorldConfig
    people: list[Person]
    cities: list[str]
    schools: list[str]
    organisations: list[Organisation]

    @classmethod
    def generate(cls, config: WorldConfig | None = None) -> World:
        return _generate(config or WorldConfig())

    def by_name(self) -> dict[str, Person]:
        return {p.name: p for p in self.people}

    def split(self, name: str) -> list[Person]:
        return [p for p in self.people if p.split == name]

    def facts(self) -> Iterator[tuple[str, str, str]]:
        """Every (subject, attribute, value) fact of the world, in a stable order."""
        for person in self.people:
            for attribute in ATTRIBUTES:
                for value in person.attributes.get(attribute, []):
                    yield (person.name, attribute, value)

    def to_json(self) -> dict[str, object]:
        return {
            "config": asdict(self.config),
            "cities": self.cities,
            "schools": self.schools,
            "organisations": [asdict(o) for o in self.organisations],
            "people": [asdict(p) for p in self.people],
        }


def bucket_of(docs: int, config: WorldConfig) -> str:
    if docs >= config.frequent_min_docs:
        return "frequent"
    if docs <= config.rare_max_docs:
        return "rare"
    return "medium"


def _generate(config: WorldConfig) -> World:
    rng = random.Random(config.seed)
    names = vocab.NameMaker(rng)
    cities_by_region = [
        [names.city() for _ in range(config.cities_per_region)] for _ in range(config.regions)
    ]
    cities = [c for region in cities_by_region for c in region]
    university = {city: f"{city} University" for city in cities}
    academies_by_region = [
        [names.academy() for _ in range(config.academies_per_region)] for _ in range(config.regions)
    ]
    schools = list(university.values()) + [a for region in academies_by_region for a in region]
    orgs: list[Organisation] = []
    for region in range(config.regions):
        for _ in range(config.orgs_per_region):
            trade = rng.choice(vocab.TRADES)
            orgs.append(Organisation(names.org(trade), trade, rng.choice(cities_by_region[region]), region))
    orgs_by_region = [[o for o in orgs if o.region == r] for r in range(config.regions)]

    people: list[Person] = []
    families: list[list[Person]] = []
    for family_id in range(config.families):
        region = rng.randrange(config.regions)
        surname = names.surname()
        home_city = rng.choice(cities_by_region[region])
        home_org = rng.choice(orgs_by_region[region]) if rng.random() < config.p_family_org else None
        base_year = rng.randrange(1900, 1990)
        size = 1 + int(rng.random() ** 1.5 * config.max_family_size)
        fame = rng.random() if config.family_fame > 0 else 0.0
        members: list[Person] = []
        used_given: set[str] = set()
        for _ in range(size):
            gender = rng.choice("fm")
            given = names.given(gender, exclude=used_given)
            used_given.add(given)
            draw = rng.random()
            if config.family_fame > 0:
                draw = config.family_fame * fame + (1 - config.family_fame) * draw
            docs = int(math.exp(draw * math.log(config.max_docs + 1)))
            docs = min(max(docs, 1), config.max_docs)
            person = Person(f"{given} {surname}", given, surname, gender, family_id, region, docs)
            person.bucket = bucket_of(docs, config)
            _assign(
                person,
                rng,
                config,
                home_city,
                home_org,
                base_year,
                cities_by_region[region],
                orgs_by_region[region],
                university,
                academies_by_region[region],
                names,
            )
            members.append(person)
        _link_siblings(members, rng, config)
        families.append(members)
        people.extend(members)
    world = World(config, people, cities, schools, orgs)
    _split(world, families, rng)
    return world


def _assign(
    person: Person,
    rng: random.Random,
    config: WorldConfig,
    home_city: str,
    home_org: Organisation | None,
    base_year: int,
    region_cities: list[str],
    region_orgs: list[Organisation],
    university: dict[str, str],
    academies: list[str],
    names: vocab.NameMaker,
) -> None:
    attrs = person.attributes
    attrs["birth_year"] = [str(base_year + rng.randint(-config.year_spread, config.year_spread))]
    city = home_city if rng.random() < config.p_home_city else rng.choice(region_cities)
    attrs["birthplace"] = [city]
    if rng.random() < config.p_employed:
        org = home_org if home_org and rng.random() < config.p_home_org else rng.choice(region_orgs)
        attrs["occupation"] = [org.trade]
        attrs["employer"] = [org.name]
    else:
        attrs["occupation"] = [rng.choice(vocab.TRADES)]
    if rng.random() < config.p_school:
        if rng.random() < config.p_home_school:
            attrs["school"] = [university[city]]
        else:
            attrs["school"] = [rng.choice(academies + [university[c] for c in region_cities])]
    if rng.random() < config.p_notable_work:
        attrs["notable_work"] = [names.work()]


def _link_siblings(members: list[Person], rng: random.Random, config: WorldConfig) -> None:
    """Pair up family members as siblings (symmetric), each person with at most one sibling."""
    pool = members[:]
    rng.shuffle(pool)
    while len(pool) >= 2:
        a, b = pool.pop(), pool.pop()
        if rng.random() < config.p_sibling:
            a.attributes["sibling"] = [b.name]
            b.attributes["sibling"] = [a.name]


def _split(world: World, families: list[list[Person]], rng: random.Random) -> None:
    """Alignment from regions other than the last; ``far`` people come only from the last region."""
    config = world.config
    far_region = config.regions - 1
    for bucket in BUCKETS:
        pool = [p for p in world.people if p.bucket == bucket and p.region != far_region]
        rng.shuffle(pool)
        if len(pool) < config.alignment_per_bucket:
            raise ValueError(
                f"only {len(pool)} {bucket} people for alignment_per_bucket="
                f"{config.alignment_per_bucket}; raise WorldConfig.families"
            )
        for person in pool[: config.alignment_per_bucket]:
            person.split = "alignment"
    touched = {p.family for p in world.people if p.split == "alignment"}
    for split, per_bucket in (
        ("validation", config.validation_per_bucket),
        ("heldout", config.heldout_per_bucket),
    ):
        for bucket in BUCKETS:
            near = [
                p
                for p in world.people
                if p.split == "background"
                and p.bucket == bucket
                and p.region != far_region
                and p.family in touched
            ]
            far = [
                p
                for p in world.people
                if p.split == "background" and p.bucket == bucket and p.region == far_region
            ]
            want_far = per_bucket // 2
            want_near = per_bucket - want_far
            if len(near) < want_near or len(far) < want_far:
                raise ValueError(
                    f"not enough {bucket} people for the {split} split (near {len(near)}/"
                    f"{want_near}, far {len(far)}/{want_far}); raise WorldConfig.families"
                )
            rng.shuffle(near)
            rng.shuffle(far)
            for person in near[:want_near]:
                person.split, person.proximity = split, "near"
            for person in far[:want_far]:
                person.split, person.proximity = split, "far"
    del families
