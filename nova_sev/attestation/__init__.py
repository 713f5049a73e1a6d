"""Attestation of an SEV launch: the guest owner's half.

The spec's Security section leaves out "the ability for the cloud user to
verify the attestation which SEV can provide using the LAUNCH_MEASURE
firmware call". This package is that check, the launch session that
comes before it and the launch secret that follows it (AMD SEV API, pub.
55766, sections 6.2, 6.5 and 6.6), and the same for SEV-ES and SEV-SNP.
It needs no libvirt, no Nova and no network, so that a guest owner can
run it on a machine they trust, away from the compute host; the only files
it reads are the images the expected digest is computed from
(``sev-snp-measure`` reads them by path) and the built-in AMD roots. Like
the rest of the package, ``sev_cert`` and ``session`` import neither oslo
nor ``nova_sev.virt``.

- ``sev_cert``: SEV platform certificates (PDH, PEK, OCA, CEK) and AMD's
  CA certificates (ARK, ASK), and the chain up to AMD's SEV roots
  (``sev_roots/``).
- ``session``: the launch session that wraps a fresh TEK and TIK for one
  platform's PDH (``sevctl session``).
- ``keys``: the transport keys (TEK, TIK) of the launch session.
- ``guid_table``: the GUID-keyed tables QEMU and OVMF exchange.
- ``measurement``: launch digest, measurement and its check.
- ``secret``: the OVMF secret table and the LAUNCH_SECRET header/payload.
- ``launch_digest``: the expected SEV, SEV-ES and SEV-SNP launch digest,
  through virtee's ``sev-snp-measure`` (the only caller of it).
- ``launch_inputs``: what a domain's launch measures, read from its XML.
- ``snp_report``, ``snp_verify``: the SEV-SNP attestation report, its
  VCEK -> ASK -> ARK chain (AMD's roots in ``amd_roots/``) and the owner's
  checks.
- ``host_data``: the HOST_DATA that binds an SNP guest to its instance.

libvirt 9.0's ``virt-qemu-sev-validate`` implements the same computation;
the functional tests hold the two to the same verdicts.
"""
