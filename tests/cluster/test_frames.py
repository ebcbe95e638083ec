"""The command log's message format: a batch of encoded commands, refused unless whole."""

from __future__ import annotations

import pytest

import boxoffice.errors as bo_errors
from boxoffice.commands import encode_command
from boxoffice_api.cluster import frames


def test_round_trip_keeps_order_and_bytes() -> None:
    commands = [encode_command("STATUS", now=1.0, user=7, token=i) for i in range(300)]
    commands.append(b"x" * 200)  # a length of two varint bytes
    commands.append(b"y" * 20_000)  # three varint bytes
    assert frames.decode_batch(frames.encode_batch(commands)) == commands


def test_largest_command_round_trips_and_a_larger_one_is_refused() -> None:
    largest = b"z" * frames.COMMAND_BYTES_MAX
    assert frames.decode_batch(frames.encode_batch([largest])) == [largest]
    with pytest.raises(ValueError):
        frames.encode_batch([largest + b"z"])


@pytest.mark.parametrize("commands", [[], [b""]])
def test_empty_batch_or_command_is_refused(commands: list[bytes]) -> None:
    with pytest.raises(ValueError):
        frames.encode_batch(commands)


def test_every_truncation_is_data_loss() -> None:
    data = frames.encode_batch([b"a" * 3, b"b" * 300])
    for end in range(len(data)):
        if end in (0, 1 + 1 + 3):  # nothing, or exactly after the first command's bytes
            continue
        with pytest.raises(bo_errors.DataLoss):
            frames.decode_batch(data[:end])
    with pytest.raises(bo_errors.DataLoss):
        frames.decode_batch(data[:1])  # the format byte alone: no commands


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing
        bytes([2, 1]) + b"a",  # an unknown format
        bytes([0, 1]) + b"a",
        bytes([frames.FORMAT, 0x81, 0x00]) + b"a",  # length 1 in two bytes (not shortest)
        bytes([frames.FORMAT, 0x00]),  # a zero-length command
        bytes([frames.FORMAT, 0x80, 0x80, 0x80, 0x80, 0x01]),  # an oversized varint
        bytes([frames.FORMAT, 0x81, 0x80, 0x80, 0x01]),  # over COMMAND_BYTES_MAX
    ],
)
def test_malformed_message_is_data_loss(data: bytes) -> None:
    with pytest.raises(bo_errors.DataLoss):
        frames.decode_batch(data)
