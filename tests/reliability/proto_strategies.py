"""Hypothesis strategies for any protobuf message, built by walking its descriptor.

The values are well typed but aim at the edges a server must survive: empty, odd-unicode and huge strings,
integer extremes of each wire type, enum numbers the schema does not define (proto3 enums are open),
NaN and infinities, repeated fields with many items, nested messages, one member of each oneof (or none),
and proto3 ``optional`` fields set or unset. ``hints`` maps a field name to strings that mean something to
the server there (resource names, judge names, roles) so that many messages get past the first validation
and reach deeper code; the hints under ``ANY_FIELD`` may turn up in every string field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = FieldDescriptor
MAX_DEPTH = 5
MANY_BYTES = 1_200_000  # a long repeated field stays near the server's 1 MiB message cap
INT_RANGES = {
    **dict.fromkeys((FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((FD.TYPE_UINT32, FD.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((FD.TYPE_UINT64, FD.TYPE_FIXED64), (0, 2**64 - 1)),
}
ODD_STRINGS = (
    "",
    " ",
    "\t\n",
    "\x00",
    "a\x00b",
    "\u202eevil",
    "e\u0301",
    "\ufeffbom",
    "\U0010ffff",
    "🙂" * 3,
    "字" * 5,
    "İ",
    "ß",
    "\u200b",
    "%s%n%x",
    "' OR 1=1 --",
    "../../etc/passwd",
    "/",
    "/tmp",
    "-1",
    "1e309",
    "NaN",
    "9" * 30,
)
HUGE_UNITS = ("x", "é", "字", "🙂", "a. ")
ANY_FIELD = "*"


@dataclass(frozen=True)
class StringSizes:
    """Lengths (in characters) of the huge strings: just over the server's text limit, up to ~1 MB."""

    over_limit: int
    large: Sequence[int] = (100_000, 450_000)


def integers(kind: int) -> st.SearchStrategy[int]:
    low, high = INT_RANGES[kind]
    edges = sorted(
        {
            v
            for v in (0, 1, -1, 2, low, high, low + 1, high - 1, 2**31, -(2**31), 2**32, 2**53)
            if low <= v <= high
        }
    )
    return st.one_of(
        st.sampled_from(edges),
        st.integers(-1000, 1000).filter(lambda v: low <= v <= high),
        st.integers(low, high),
    )


def floats(kind: int) -> st.SearchStrategy[float]:
    width = 32 if kind == FD.TYPE_FLOAT else 64
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, float("nan"), float("inf"), float("-inf"), 1e-45, 3.4e38]
    return st.one_of(st.sampled_from(edges), st.floats(width=width))


def strings(hinted: Sequence[str], anywhere: Sequence[str], sizes: StringSizes) -> st.SearchStrategy[str]:
    """A hint for this field, a name the server knows, short text, an odd string, or (rarely) a huge one."""
    huge_lengths = [sizes.over_limit, *sizes.large]
    huge = st.builds(
        lambda unit, n: (unit * (n // len(unit) + 1))[:n],
        st.sampled_from(HUGE_UNITS),
        st.sampled_from(huge_lengths),
    )
    text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)

    @st.composite
    def pick(draw: st.DrawFn) -> str:
        roll = draw(st.integers(0, 99))  # ordered so that examples shrink towards short text
        if roll < 25:
            return draw(text)
        if roll < 65 and hinted:
            return draw(st.sampled_from(list(hinted)))
        if roll < 75 and anywhere:
            return draw(st.sampled_from(list(anywhere)))
        if roll < 96:
            return draw(st.sampled_from(ODD_STRINGS))
        return draw(huge)

    return pick()


def enums(field: FieldDescriptor) -> st.SearchStrategy[int]:
    known = st.sampled_from([v.number for v in field.enum_type.values])
    if field.enum_type.is_closed:
        return known
    return st.one_of(
        known, st.sampled_from([-1, 7, 77, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1)
    )


def copies(item: Any, count: int) -> list[Any]:
    """``count`` copies of ``item``, fewer if they would pass ``MANY_BYTES`` (nested lists stay bounded)."""
    size = item.ByteSize() if isinstance(item, Message) else len(item) if isinstance(item, str | bytes) else 8
    return [item] * max(1, min(count, MANY_BYTES // max(size, 1)))


def is_synthetic(oneof: OneofDescriptor) -> bool:
    """A proto3 ``optional`` field's hidden oneof."""
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


class MessageStrategies:
    """Builds (and caches) a strategy per message type."""

    def __init__(self, hints: Mapping[str, Sequence[str]], sizes: StringSizes) -> None:
        self.hints = hints
        self.sizes = sizes
        self._cache: dict[tuple[str, int], st.SearchStrategy[Message]] = {}

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            self._cache[key] = self._build(descriptor, depth)
        return self._cache[key]

    def _scalar(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if field.type == FD.TYPE_MESSAGE:
            return self.message(field.message_type, depth + 1)
        if field.type == FD.TYPE_STRING:
            return strings(self.hints.get(field.name, ()), self.hints.get(ANY_FIELD, ()), self.sizes)
        if field.type == FD.TYPE_BYTES:
            return st.binary(max_size=64)
        if field.type == FD.TYPE_BOOL:
            return st.booleans()
        if field.type == FD.TYPE_ENUM:
            return enums(field)
        if field.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
            return floats(field.type)
        return integers(field.type)

    def _repeated(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = self._scalar(field.message_type.fields_by_name["key"], depth)
            value = self._scalar(field.message_type.fields_by_name["value"], depth)
            return st.dictionaries(key, value, max_size=4)
        item = self._scalar(field, depth)
        many = st.builds(copies, item, st.sampled_from([17, 257, 2000]))
        return st.one_of(st.lists(item, max_size=4), many)

    def _value(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if depth >= MAX_DEPTH:
            return st.none()
        strategy = self._repeated(field, depth) if field.is_repeated else self._scalar(field, depth)
        return st.one_of(st.none(), strategy)

    def mutants(self, seed: Message, max_changes: int = 3) -> st.SearchStrategy[Message]:
        """``seed`` with one to ``max_changes`` fields (possibly nested) replaced by drawn values or unset:
        a valid request with odd values reaches the code behind the first validation."""
        paths = field_paths(seed.DESCRIPTOR)
        if not paths:
            return st.just(seed)
        change = st.sampled_from(paths).flatmap(
            lambda path: st.tuples(st.just(path), self._value(path[-1], len(path) - 1))
        )
        return st.lists(change, min_size=1, max_size=max_changes).map(lambda changes: mutate(seed, changes))

    def _build(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        cls = message_factory.GetMessageClass(descriptor)
        plain = {
            f.name: self._value(f, depth)
            for f in descriptor.fields
            if f.containing_oneof is None or is_synthetic(f.containing_oneof)
        }
        choices = [
            st.one_of(st.none(), *[st.tuples(st.just(f.name), self._value(f, depth)) for f in oneof.fields])
            for oneof in descriptor.oneofs
            if not is_synthetic(oneof)
        ]
        return st.builds(
            lambda values, chosen: assemble(cls, values, chosen),
            st.fixed_dictionaries(plain),
            st.tuples(*choices),
        )


def field_paths(descriptor: Descriptor, depth: int = 3) -> list[tuple[FieldDescriptor, ...]]:
    """Paths to every field, through singular message fields, at most ``depth`` levels down."""
    paths: list[tuple[FieldDescriptor, ...]] = []
    for field in descriptor.fields:
        paths.append((field,))
        if field.type == FD.TYPE_MESSAGE and not field.is_repeated and depth > 1:
            paths += [(field, *rest) for rest in field_paths(field.message_type, depth - 1)]
    return paths


def mutate(seed: Message, changes: list[tuple[tuple[FieldDescriptor, ...], Any]]) -> Message:
    msg = type(seed)()
    msg.CopyFrom(seed)
    for path, value in changes:
        target = msg
        for step in path[:-1]:
            target = getattr(target, step.name)
        target.ClearField(path[-1].name)
        if value is not None:
            set_field(target, path[-1], value)
    return msg


def assemble(
    cls: type[Message], values: dict[str, Any], chosen: tuple[tuple[str, Any] | None, ...]
) -> Message:
    """A message of ``cls`` with the drawn values set (None: left unset)."""
    msg = cls()
    items = list(values.items()) + [c for c in chosen if c is not None]
    for name, value in items:
        if value is not None:
            set_field(msg, msg.DESCRIPTOR.fields_by_name[name], value)
    return msg


def set_field(msg: Message, field: FieldDescriptor, value: Any) -> None:
    target = getattr(msg, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        for key, item in value.items():
            if isinstance(item, Message):
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        target.extend(value)
    elif field.type == FD.TYPE_MESSAGE:
        target.SetInParent()  # an empty sub-message is still present
        target.CopyFrom(value)
    else:
        setattr(msg, field.name, value)
