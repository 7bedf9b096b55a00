"""Hypothesis strategies for request bytes that are not (quite) a valid message of a given type.

Five kinds, encoded by hand so they reach the server exactly as written: random bytes; a valid message cut
short; a string field (possibly nested) holding invalid UTF-8 (``0xff 0xfe``...); a field sent with the wrong
wire type (or one of the unused wire types 6 and 7, or an unterminated group); and a message just over the
server's size cap.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

FD = FieldDescriptor
VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
UNUSED_WIRE_TYPES = (6, 7)
BAD_UTF8 = (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\xe2\x82")


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers are sent as 64-bit two's complement, as protobuf does
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, LENGTH) + varint(len(payload)) + payload


def accepted_wire_types(field: FieldDescriptor) -> set[int]:
    """The wire types a parser takes for ``field`` (repeated numbers come packed or one by one)."""
    if field.type in (FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE):
        return {LENGTH}
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FIXED64, FD.TYPE_SFIXED64):
        natural = FIXED64
    elif field.type in (FD.TYPE_FLOAT, FD.TYPE_FIXED32, FD.TYPE_SFIXED32):
        natural = FIXED32
    else:
        natural = VARINT
    return {natural, LENGTH} if field.is_repeated else {natural}


def string_paths(descriptor: Descriptor, depth: int = 3) -> list[tuple[int, ...]]:
    """Field-number paths from ``descriptor`` to each string field at most ``depth`` messages down."""
    paths: list[tuple[int, ...]] = []
    for field in descriptor.fields:
        if field.type == FD.TYPE_STRING:
            paths.append((field.number,))
        elif field.type == FD.TYPE_MESSAGE and depth > 1:
            paths += [(field.number, *rest) for rest in string_paths(field.message_type, depth - 1)]
    return paths


def nested(path: Sequence[int], payload: bytes) -> bytes:
    """``payload`` as the length-delimited value of the last field of ``path``, wrapped by the ones before."""
    encoded = payload
    for number in reversed(path):
        encoded = length_delimited(number, encoded)
    return encoded


def invalid_utf8(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    paths = string_paths(descriptor) or [(1,)]  # no string field: an unknown field number 1 carries it
    return st.builds(
        lambda path, bad, text: nested(path, text.encode() + bad),
        st.sampled_from(paths),
        st.sampled_from(BAD_UTF8),
        st.text(max_size=8),
    )


def _value_for(wire_type: int, data: bytes) -> bytes:
    if wire_type == VARINT:
        return varint(int.from_bytes(data[:9] or b"\x01", "little"))
    if wire_type == FIXED64:
        return data[:8].ljust(8, b"\x00")
    if wire_type == FIXED32:
        return data[:4].ljust(4, b"\x00")
    if wire_type == LENGTH:
        return varint(len(data)) + data
    return data  # groups and unused wire types: whatever follows


def wrong_wire_type(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    numbers = [(f.number, accepted_wire_types(f)) for f in descriptor.fields] or [(1, {LENGTH})]

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        number, accepted = draw(st.sampled_from(numbers))
        wrong = draw(
            st.sampled_from(
                [
                    w
                    for w in (VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32, *UNUSED_WIRE_TYPES)
                    if w not in accepted
                ]
            )
        )
        return tag(number, wrong) + _value_for(wrong, draw(st.binary(max_size=16)))

    return build()


def truncated(valid: st.SearchStrategy[Message]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = draw(valid).SerializeToString()
        if len(data) < 2:
            return b"\x0a\x05ab"  # field 1, length 5, two bytes
        return data[: draw(st.integers(1, len(data) - 1))]

    return build()


def oversize(descriptor: Descriptor, cap: int) -> st.SearchStrategy[bytes]:
    """A message just over, or far over, ``cap`` bytes: a long string in its first string field."""
    path = (string_paths(descriptor) or [(1,)])[0]
    return st.builds(lambda extra: nested(path, b"z" * (cap + extra)), st.sampled_from([1, 4096, cap]))


def malformed(
    descriptor: Descriptor, valid: st.SearchStrategy[Message], cap: int
) -> st.SearchStrategy[bytes]:
    """Any of the kinds above; the huge one only now and then."""
    return st.one_of(
        st.binary(min_size=1, max_size=256),
        truncated(valid),
        invalid_utf8(descriptor),
        wrong_wire_type(descriptor),
        st.integers(0, 19).flatmap(
            lambda n: oversize(descriptor, cap) if n == 0 else invalid_utf8(descriptor)
        ),
    )
