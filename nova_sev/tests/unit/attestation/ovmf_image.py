"""Synthetic OVMF images for the launch digest tests.

Debian's OVMF builds have no SEV hashes table, so they cannot measure a
direct kernel boot. These images carry what an AmdSev OVMF build declares,
written from the layout edk2 documents (OvmfPkg/ResetVector: the GUIDed
footer table that ends 32 bytes before the end of the image, read
backwards, and the "ASEV" SEV metadata it points to), so that the kernel
hashes cases can be measured at all: the SEV-ES reset block, the SEV
hashes table (GPA and size) and SNP metadata sections (pre-validated
memory, secrets, CPUID and kernel hashes pages).
"""

import random
import struct
import uuid

FOOTER_GUID = uuid.UUID('96b582de-1fb2-45f7-baea-a366c55a082d')
SEV_HASH_TABLE_RV_GUID = uuid.UUID('7255371f-3a3b-4b04-927b-1da6efa8d454')
SEV_ES_RESET_BLOCK_GUID = uuid.UUID('00f771de-1a7e-4fcb-890e-68c77e2fb44e')
SEV_METADATA_GUID = uuid.UUID('dc886566-984a-4798-a75e-5585a7bf67cc')

SECTION_SEC_MEM = 1
SECTION_SECRETS = 2
SECTION_CPUID = 3
SECTION_KERNEL_HASHES = 0x10

PAGE = 4096
TAIL_LEN = 32


def _entry(guid: uuid.UUID, data: bytes) -> bytes:
    # Data first, then the u16 length (data included) and the GUID, since
    # the table is read from its end.
    return data + struct.pack('<H', len(data) + 18) + guid.bytes_le


def build(seed: int, pages: int = 32, kernel_hashes: bool = True) -> bytes:
    """An image of ``pages`` pages whose contents and layout follow from
    ``seed``; with ``kernel_hashes`` it declares the SEV hashes table.
    """
    rng = random.Random(seed)
    size = pages * PAGE
    sections = [
        (0x800000, 0x9000, SECTION_SEC_MEM),
        (0x809000, PAGE, SECTION_SECRETS),
        (0x80a000, PAGE, SECTION_CPUID),
    ]
    hashes_gpa = 0x80b000 + 16 * rng.randrange(0, 200)
    if kernel_hashes:
        sections.append((0x80b000, PAGE, SECTION_KERNEL_HASHES))
    metadata = b'ASEV' + struct.pack('<III', 16 + 12 * len(sections), 1,
                                     len(sections))
    metadata += b''.join(struct.pack('<III', *s) for s in sections)
    eip = 0xffff0000 | (rng.randrange(0, 0x1000) << 4)
    metadata_offset = PAGE + 16 * rng.randrange(0, 64)
    table = _entry(SEV_ES_RESET_BLOCK_GUID, struct.pack('<I', eip))
    table += _entry(SEV_METADATA_GUID,
                    struct.pack('<I', size - metadata_offset))
    if kernel_hashes:
        table += _entry(SEV_HASH_TABLE_RV_GUID,
                        struct.pack('<II', hashes_gpa, 0x400))
    footer = struct.pack('<H', len(table) + 18) + FOOTER_GUID.bytes_le
    tail = table + footer + bytes(TAIL_LEN)
    body = bytearray(rng.randbytes(size - len(tail)))
    body[metadata_offset:metadata_offset + len(metadata)] = metadata
    return bytes(body) + tail
