"""What an Arrow IPC file's footer and batch headers say of each record
batch before any of its data is read: its number of rows and whether its
body is compressed.

Arrow decompresses a batch whole when it is opened, and pyarrow does not
tell whether a batch is compressed without opening it; the describe reader
needs to know before, to read a large compressed batch a few columns at a
time. The file format (https://arrow.apache.org/docs/format/Columnar.html,
"IPC File Format"): ``ARROW1`` and padding, the stream's messages, the
footer (a flatbuffer ``Footer``), its size as int32, ``ARROW1``. The
footer's ``recordBatches`` are ``Block`` structs (offset, metadata length,
body length); at each offset a message (an optional 0xFFFFFFFF
continuation marker, the metadata size, a flatbuffer ``Message`` whose
header is a ``RecordBatch``: ``length``, ``nodes``, ``buffers``,
``compression``). Only what is needed is read, with bounds checked: any
surprise gives None, and the caller opens batches as before.
"""

from __future__ import annotations

import struct

_MAGIC = b"ARROW1"
_RECORD_BATCH = 3  # MessageHeader union: NONE, Schema, DictionaryBatch, RecordBatch, ...


class _Bad(Exception):
    pass


class _Flat:
    """Reads flatbuffer tables from ``buf`` (a bytes-like object) at absolute positions."""

    def __init__(self, buf, start, end):
        self.buf, self.start, self.end = buf, start, end

    def _unpack(self, fmt, at):
        size = struct.calcsize(fmt)
        if not (self.start <= at and at + size <= self.end):
            raise _Bad
        return struct.unpack_from(fmt, self.buf, at)[0]

    def root(self):
        return self.start + self._unpack("<I", self.start)

    def field(self, table, index):
        """Absolute position of field ``index`` of the table at ``table``, or None if absent."""
        vtable = table - self._unpack("<i", table)
        vsize = self._unpack("<H", vtable)
        if vsize < 4 or vsize % 2:
            raise _Bad
        if 4 + 2 * index >= vsize:
            return None
        off = self._unpack("<H", vtable + 4 + 2 * index)
        return table + off if off else None

    def ref(self, at):
        """The object an offset field at ``at`` points to."""
        return at + self._unpack("<I", at)

    def scalar(self, fmt, at, default=0):
        return default if at is None else self._unpack(fmt, at)


class Blocks:
    """The footer's record batch blocks, each read from the file when asked
    for: a list of them cost ~130 bytes a batch for the whole read (300,000
    batches: 37 MiB)."""

    def __init__(self, buf, at, count):
        self.buf, self.at, self.count = buf, at, count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        """(offset, metadata length) of batch ``i``."""
        if not 0 <= i < self.count:
            raise IndexError(i)
        return struct.unpack_from("<qi", self.buf, self.at + 24 * i)


def batch_blocks(buf):
    """The :class:`Blocks` of the record batches of the Arrow IPC file in
    ``buf`` (a memory map or bytes), in the footer's order (``get_batch``'s),
    or None where anything is not as expected."""
    try:
        return _blocks(buf)
    except (_Bad, struct.error, ValueError, OverflowError):
        return None


def batch_head(buf, block):
    """``(rows, compressed)`` of the record batch at ``block`` (an item of
    batch_blocks), read from its message's metadata alone, or None."""
    try:
        return _message_head(buf, *block, len(buf))
    except (_Bad, struct.error, ValueError, OverflowError):
        return None


def _blocks(buf):
    n = len(buf)
    if n < 2 * len(_MAGIC) + 4 or bytes(buf[:6]) != _MAGIC or bytes(buf[n - 6:]) != _MAGIC:
        raise _Bad
    size = struct.unpack_from("<i", buf, n - 10)[0]
    start = n - 10 - size
    if size <= 0 or start < 8:
        raise _Bad
    footer = _Flat(buf, start, start + size)
    table = footer.root()
    at = footer.field(table, 3)  # recordBatches
    if at is None:
        return Blocks(buf, 0, 0)
    vec = footer.ref(at)
    count = footer.scalar("<I", vec)
    if vec + 4 + 24 * count > footer.end:
        raise _Bad
    return Blocks(buf, vec + 4, count)


def _message_head(buf, offset, meta_len, n):
    if offset < 8 or meta_len < 8 or offset + meta_len > n:
        raise _Bad
    first = struct.unpack_from("<I", buf, offset)[0]
    skip = 8 if first == 0xFFFFFFFF else 4  # continuation marker, then the size (older files: the size alone)
    fb = _Flat(buf, offset + skip, offset + meta_len)
    msg = fb.root()
    if fb.scalar("<B", fb.field(msg, 1)) != _RECORD_BATCH:
        raise _Bad
    at = fb.field(msg, 2)
    if at is None:
        raise _Bad
    rb = fb.ref(at)
    rows = fb.scalar("<q", fb.field(rb, 0))
    if rows < 0:
        raise _Bad
    return rows, fb.field(rb, 3) is not None  # compression: present only for compressed bodies
