"""GUID-keyed tables, the format QEMU and OVMF exchange data in.

A table is its GUID, its length (of the table itself, GUID and length field
included) and entries, each an entry GUID, the entry's length (again
including GUID and length field) and its data. GUIDs are stored in
little-endian (Microsoft) byte order. The width of the length fields
differs: 2 bytes in QEMU's kernel hashes table, 4 in OVMF's secret table.
"""

import uuid

from nova_sev import exception

GUID_LEN = 16
BLOCK_LEN = 16


def pad_to_block(data: bytes) -> bytes:
    """``data`` with zeros up to the next multiple of 16 bytes.

    QEMU rounds its hashes table up to 16 bytes (PaddedSevHashTable in
    target/i386/sev.c); the SEV firmware encrypts guest memory in 16-byte
    blocks.
    """
    return data + bytes(-len(data) % BLOCK_LEN)


def build_entry(guid: uuid.UUID, data: bytes, len_size: int) -> bytes:
    """One table entry: GUID, length, data."""
    length = GUID_LEN + len_size + len(data)
    return guid.bytes_le + length.to_bytes(len_size, 'little') + data


def build_table(guid: uuid.UUID, entries: list[tuple[uuid.UUID, bytes]],
                len_size: int) -> bytes:
    """The table (unpadded) holding ``entries`` in the order given."""
    body = b''.join(build_entry(g, d, len_size) for g, d in entries)
    return build_entry(guid, body, len_size)


def parse_table(data: bytes, guid: uuid.UUID,
                len_size: int) -> list[tuple[uuid.UUID, bytes]]:
    """The entries of a table built by ``build_table``; padding after the
    table's length is ignored. InvalidGuidTable when it does not parse.
    """
    header_len = GUID_LEN + len_size
    if len(data) < header_len or data[:GUID_LEN] != guid.bytes_le:
        raise exception.InvalidGuidTable(
            guid=guid, reason='the table does not start with its GUID')
    length = int.from_bytes(data[GUID_LEN:header_len], 'little')
    if length < header_len or length > len(data):
        raise exception.InvalidGuidTable(
            guid=guid, reason='table length %d does not fit in %d bytes'
            % (length, len(data)))
    entries = []
    offset = header_len
    while offset < length:
        if offset + header_len > length:
            raise exception.InvalidGuidTable(
                guid=guid, reason='truncated entry at offset %d' % offset)
        entry_guid = uuid.UUID(bytes_le=bytes(data[offset:offset + GUID_LEN]))
        entry_len = int.from_bytes(
            data[offset + GUID_LEN:offset + header_len], 'little')
        if entry_len < header_len or offset + entry_len > length:
            raise exception.InvalidGuidTable(
                guid=guid, reason='entry %s at offset %d has length %d, '
                'beyond the table' % (entry_guid, offset, entry_len))
        entries.append((entry_guid,
                        bytes(data[offset + header_len:offset + entry_len])))
        offset += entry_len
    return entries
