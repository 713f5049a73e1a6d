"""Known-answer vectors for the attestation tests, written by the project.

Inputs are fixed byte patterns; the expected launch digests, measurements
and secret were computed once and checked, when written, with libvirt 9.0's
``virt-qemu-sev-validate`` (the measurements verify with it: "OK: Looks
good to me"). They pin the result so that a change shows at once.
"""

TIK = bytes(range(16))
TEK = bytes(range(16, 32))
TK = TEK + TIK
MNONCE = bytes(range(32, 48))
FIRMWARE = b'OVMF' * 1024
KERNEL = b'kernel'
INITRD = b'initrd'
CMDLINE = 'console=ttyS0'
VMSA_CPU0 = b'\x01' * 4096
VMSA_CPU1 = b'\x02' * 4096
API_MAJOR, API_MINOR, BUILD_ID = 1, 51, 3
POLICY_SEV, POLICY_SEV_ES = 0x33, 0x37

# QEMU's padded hashes table for KERNEL, INITRD and CMDLINE.
HASHES_TABLE_HEX = (
    '06d63894224fc94cb479a793d411fd21a800'
    'd82dd09720bd944caa78e7714d36ab2a3200'
    'f18aae9b3c09e55bc3047ad361e2442d7c53372470b2958fb83293209a784f71'
    '31f7ba442f3ad74b9af141e29169781d3200'
    '09e6c018d2c8c4903308613dd1b72484d57eadf12ec50ddc8f52e5accce470f2'
    '3794e74dd2ab7f42b835d5b172d2045b3200'
    '6923dd1bc0460082c5d55a831908c24a282860b7f1cd6c2b79cf1bc8857c639c'
    '0000000000000000')

DIGEST_FIRMWARE = (
    '24b033877da428f75a3d0f31e879e1764e84aefd2c580910673f717a08469100')
DIGEST_KERNEL = (
    '58fbcb6d18c8eea76b7994cfba5ca861f00b0d16de09f945fa13266f421d3e62')
DIGEST_SEV_ES_2CPU = (
    '69af9ff47aff0a50d698c2c96a24c4c6c67d5a58cdf1ddaa6550e4b7e66eb370')

MEASUREMENT_FIRMWARE = (
    'rZPFe8Yp8wlm3upRqX82cSxSMvLeMmYRsTzmeBZR5LQgISIjJCUmJygpKissLS4v')
MEASUREMENT_KERNEL = (
    'wRkgzDMTkA3/qOfqPuh9fXXnoY2v0wljQObEtNPcob0gISIjJCUmJygpKissLS4v')
MEASUREMENT_SEV_ES_2CPU = (
    'kE/DX5euFJ9+wlll4EyrlGxWauOkCPWiuhEIa7uARAkgISIjJCUmJygpKissLS4v')

# OVMF's secret table with one LUKS key b'passphrase', and the launch
# secret carrying it into the MEASUREMENT_FIRMWARE launch with IV 48..63.
LUKS_PASSPHRASE = b'passphrase'
SECRET_TABLE_HEX = (
    '42f5741edd71664d963eef4287ff173b32000000'
    'e5696873f084734992ec06879ce3da0b1e000000' + b'passphrase'.hex() +
    '0000000000000000000000000000')
SECRET_IV = bytes(range(48, 64))
SECRET_HEADER_B64 = (
    'AAAAADAxMjM0NTY3ODk6Ozw9Pj81FnZJLJz3t7yQ/cftKXYhsyeksn3UpC97P9EwRmJ0LA==')
SECRET_PAYLOAD_B64 = (
    'qtAy0ZhJflapNMt7hvjqO9Ds7y5zbQRHtMYyNWKUje5xWNIIw8WNLXLdW2dwq/kXm0jC'
    '/EOWamOkfASS6tYo4A==')
