"""QEMU firmware descriptors: which OVMF builds can boot SEV guests.

QEMU's docs/interop/firmware.json describes JSON files that name a firmware
image, its NVRAM template, the machines it targets and its ``features``;
``amd-sev``, ``amd-sev-es`` and ``amd-sev-snp`` mark builds that support
SEV, SEV-ES and SEV-SNP.
Loading the files is the I/O edge (``load_descriptors``); choosing among
them is a pure function (``select_firmware``).
"""

import dataclasses
import fnmatch
import json
import logging
import os

LOG = logging.getLogger(__name__)

# Where QEMU looks for descriptors ([sev]firmware_descriptor_dirs' default).
DEFAULT_DESCRIPTOR_DIRS = ('/etc/qemu/firmware', '/usr/share/qemu/firmware')
FEATURE_AMD_SEV = 'amd-sev'
FEATURE_AMD_SEV_ES = 'amd-sev-es'
FEATURE_AMD_SEV_SNP = 'amd-sev-snp'
# firmware.json's mapping devices: "flash" is pflash with an NVRAM store,
# "memory" a stateless image QEMU loads into guest memory (-bios).
DEVICE_FLASH = 'flash'
DEVICE_MEMORY = 'memory'


@dataclasses.dataclass(frozen=True)
class FirmwareTarget:
    architecture: str
    machines: tuple[str, ...]

    def matches(self, arch: str, machine: str) -> bool:
        return self.architecture == arch and any(
            fnmatch.fnmatchcase(machine, pattern) for pattern in self.machines)


@dataclasses.dataclass(frozen=True)
class FirmwareDescriptor:
    """One QEMU firmware descriptor, reduced to what SEV guests need."""

    path: str
    interface_types: tuple[str, ...]
    device: str
    executable: str | None
    nvram_template: str | None
    targets: tuple[FirmwareTarget, ...]
    features: tuple[str, ...]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def supports(self, arch: str, machine: str) -> bool:
        return any(t.matches(arch, machine) for t in self.targets)


def parse_descriptor(path: str, data: dict) -> FirmwareDescriptor:
    """Build a descriptor from the decoded JSON of ``path``.

    Raises ValueError when a field has the wrong shape.
    """
    if not isinstance(data, dict):
        raise ValueError('not a JSON object')
    mapping = data.get('mapping') or {}
    device = str(mapping.get('device', ''))
    if device == DEVICE_MEMORY:
        # A "memory" mapping names its image directly (firmware.json's
        # FirmwareMappingMemory).
        executable = mapping.get('filename')
    else:
        executable = (mapping.get('executable') or {}).get('filename')
    targets = tuple(
        FirmwareTarget(str(t['architecture']),
                       tuple(str(m) for m in t.get('machines', ())))
        for t in data.get('targets', ()))
    return FirmwareDescriptor(
        path=path,
        interface_types=tuple(data.get('interface-types', ())),
        device=device,
        executable=executable,
        nvram_template=(mapping.get('nvram-template') or {}).get('filename'),
        targets=targets,
        features=tuple(str(f) for f in data.get('features', ())))


def load_descriptors(dirs: list[str]) -> list[FirmwareDescriptor]:
    """The descriptors found in ``dirs``, in QEMU's order of priority.

    As in QEMU, files are sorted by name and a name in an earlier directory
    hides the same name in later ones. Unreadable or malformed files are
    logged and left out: one broken file must not hide the others.
    """
    by_name: dict[str, str] = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith('.json') and name not in by_name:
                by_name[name] = os.path.join(directory, name)
    descriptors = []
    for name in sorted(by_name):
        path = by_name[name]
        try:
            with open(path, encoding='utf-8') as f:
                descriptors.append(parse_descriptor(path, json.load(f)))
        except (OSError, ValueError, KeyError, TypeError,
                RecursionError) as e:
            LOG.warning('Ignoring firmware descriptor %s: %s', path, e)
    return descriptors


def select_firmware(descriptors: list[FirmwareDescriptor], arch: str,
                    machine: str, required: tuple[str, ...]
                    ) -> FirmwareDescriptor | None:
    """The first UEFI flash firmware for ``arch``/``machine`` whose features
    include all of ``required``.

    Descriptors that need SMM or enrol Secure Boot keys come last: an SEV
    guest needs neither, and SMM is not available to SEV-ES guests.
    """
    candidates = [
        d for d in descriptors
        if 'uefi' in d.interface_types and d.device == DEVICE_FLASH
        and d.executable and d.supports(arch, machine)
        and all(f in d.features for f in required)]
    return _cheapest(candidates)


def _cheapest(candidates: list[FirmwareDescriptor]
              ) -> FirmwareDescriptor | None:
    def cost(d: FirmwareDescriptor) -> int:
        return sum(f in d.features
                   for f in ('requires-smm', 'enrolled-keys', 'secure-boot'))

    candidates.sort(key=cost)  # stable: keeps QEMU's order among equals
    return candidates[0] if candidates else None


def is_stateless(descriptor: FirmwareDescriptor) -> bool:
    """Whether ``descriptor`` is stateless firmware: loaded into memory,
    or flash without an NVRAM template (nothing the host keeps between
    boots, which the launch measurement could not cover).
    """
    if descriptor.device == DEVICE_MEMORY:
        return True
    return descriptor.device == DEVICE_FLASH and not descriptor.nvram_template


def select_stateless_firmware(descriptors: list[FirmwareDescriptor],
                              arch: str, machine: str,
                              required: tuple[str, ...]
                              ) -> FirmwareDescriptor | None:
    """The first stateless UEFI firmware for ``arch``/``machine`` whose
    features include all of ``required``.

    Guests whose launch is attested boot stateless firmware: an NVRAM
    store is state the host controls and the launch measurement does not
    cover.
    """
    return _cheapest([
        d for d in descriptors
        if 'uefi' in d.interface_types and is_stateless(d)
        and d.executable and d.supports(arch, machine)
        and all(f in d.features for f in required)])


def select_snp_firmware(descriptors: list[FirmwareDescriptor], arch: str,
                        machine: str) -> FirmwareDescriptor | None:
    """The first stateless UEFI firmware for ``arch``/``machine`` whose
    features include ``amd-sev-snp`` (Nova requires
    ``hw_firmware_stateless`` for SEV-SNP).
    """
    return select_stateless_firmware(descriptors, arch, machine,
                                     (FEATURE_AMD_SEV_SNP,))
