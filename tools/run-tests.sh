#!/usr/bin/env bash
# Set this machine up and run the whole nova-sev test suite: unit tests,
# the real-libvirt tier (embedded QEMU driver), the Nova functional tier
# (real Nova and placement) and the attestation tier against libvirt's
# virt-qemu-sev-validate. Closes with "N passed, N failed, N skipped" and
# fails when a test failed or when no test ran.
#   tools/run-tests.sh [stestr filter regex]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/tools/setup-env.sh" --test || { echo "0 passed, 1 failed"; exit 1; }
venv="${NOVA_SEV_VENV:-$top/.venv}"
export PATH="$venv/bin:$PATH"
# No test skips for want of the real parts (libvirt, QEMU, Nova, the
# attestation peer): setup-env installs them, and a missing one is an error.

lint_failed=0
"$venv/bin/flake8" nova_sev nova tools || lint_failed=1

"$venv/bin/stestr" run --concurrency "${NOVA_SEV_CONCURRENCY:-2}" "$@" \
    </dev/null
stestr_rc=$?

# -- The Nova tier once more, on eventlet ------------------------------------
# Nova 34 runs nova-compute on native threads by default (the run above) or
# on eventlet: nova.monkey_patch reads OS_NOVA_DISABLE_EVENTLET_PATCHING when
# Nova's test package is imported. The tests of the filter that are in
# nova_sev/tests/functional/nova_driver run again with it false; both runs
# are loaded into one stestr run, which the closing line counts.
nova_tier='^nova_sev\.tests\.functional\.nova_driver\.'
work=$(mktemp -d)
"$venv/bin/stestr" last --subunit >"$work/threads.subunit"
"$venv/bin/stestr" list "$@" 2>/dev/null | grep -E "$nova_tier" \
    >"$work/nova-tier.list"
if [ -s "$work/nova-tier.list" ]; then
    echo "run-tests: the Nova tier again, on eventlet" >&2
    OS_NOVA_DISABLE_EVENTLET_PATCHING=false "$venv/bin/stestr" run \
        --concurrency "${NOVA_SEV_CONCURRENCY:-2}" \
        --load-list "$work/nova-tier.list" </dev/null
    eventlet_rc=$?
    [ "$eventlet_rc" -eq 0 ] || stestr_rc=$eventlet_rc
    "$venv/bin/stestr" last --subunit >"$work/eventlet.subunit"
    cat "$work/threads.subunit" "$work/eventlet.subunit" |
        "$venv/bin/stestr" load >/dev/null
fi
rm -rf "$work"
# ----------------------------------------------------------------------------

"$venv/bin/stestr" last --subunit | "$venv/bin/python" \
    "$top/tools/count-results.py" --extra-failed "$lint_failed" \
    --runner-rc "$stestr_rc"
