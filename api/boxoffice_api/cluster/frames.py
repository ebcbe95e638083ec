"""The command log's message format: one message is a batch of encoded commands.

A message is the byte ``FORMAT`` (1), then for each command its length as an unsigned LEB128
varint and its bytes (``boxoffice.commands.encode_command``, the journal's record encoding).
A replica applies a message's commands in order; the result of command ``i`` of the message at
stream sequence ``s`` is addressed as ``(s, i)``. Nothing else travels in the payload: the
message id (``Nats-Msg-Id`` header) is the append's de-duplication key.
"""

from __future__ import annotations

from collections.abc import Sequence

import boxoffice.errors as bo_errors

FORMAT = 1
"""The first byte of every message (a reader refuses any other)."""

COMMAND_BYTES_MAX = 1 << 20
"""The largest command accepted in a message (a concert with its seat map is the largest)."""


def encode_batch(commands: Sequence[bytes]) -> bytes:
    """One log message holding ``commands`` (each an encoded command), in order.

    Raises:
        ValueError: no commands, or one larger than :data:`COMMAND_BYTES_MAX`.
    """
    if not commands:
        raise ValueError("a log message holds at least one command")
    out = bytearray((FORMAT,))
    for command in commands:
        size = len(command)
        if size == 0 or size > COMMAND_BYTES_MAX:
            raise ValueError(f"a command is 1..{COMMAND_BYTES_MAX} bytes, got {size}")
        while size >= 0x80:
            out.append((size & 0x7F) | 0x80)
            size >>= 7
        out.append(size)
        out += command
    return bytes(out)


def decode_batch(data: bytes) -> list[bytes]:
    """The encoded commands of one log message, in order.

    Raises:
        boxoffice.errors.DataLoss: not a whole message of :data:`FORMAT` (unknown format,
            a truncated length or command, an empty batch, a length not in shortest form).
    """
    if not data or data[0] != FORMAT:
        raise bo_errors.DataLoss(f"log message: unknown format {data[:1]!r}")
    commands: list[bytes] = []
    pos, end = 1, len(data)
    while pos < end:
        size, shift, start = 0, 0, pos
        while True:
            if pos >= end or shift > 21:
                raise bo_errors.DataLoss("log message: truncated or oversized length")
            byte = data[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if (pos - start > 1 and byte == 0) or size == 0 or size > COMMAND_BYTES_MAX:
            raise bo_errors.DataLoss("log message: a length not in shortest form or out of range")
        if pos + size > end:
            raise bo_errors.DataLoss("log message: truncated command")
        commands.append(data[pos : pos + size])
        pos += size
    if not commands:
        raise bo_errors.DataLoss("log message: no commands")
    return commands
