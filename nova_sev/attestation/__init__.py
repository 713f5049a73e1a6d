"""Attestation of an SEV launch: the guest owner's half.

The spec's Security section leaves out "the ability for the cloud user to
verify the attestation which SEV can provide using the LAUNCH_MEASURE
firmware call". This package is that check and the launch secret that
follows it (AMD SEV API, pub. 55766, sections 6.5 and 6.6). It is pure: no
libvirt, no Nova, no file or network I/O, so that a guest owner can run it
on a machine they trust, away from the compute host.

- ``keys``: the transport keys (TEK, TIK) of the launch session.
- ``guid_table``: the GUID-keyed tables QEMU and OVMF exchange.
- ``measurement``: launch digest, measurement and its check.
- ``secret``: the OVMF secret table and the LAUNCH_SECRET header/payload.

libvirt 9.0's ``virt-qemu-sev-validate`` implements the same computation;
the functional tests hold the two to the same verdicts.
"""
