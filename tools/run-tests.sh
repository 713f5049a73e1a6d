#!/usr/bin/env bash
# Set this machine up and run the whole nova-sev test suite: unit tests,
# the real-libvirt tier (embedded QEMU driver), the Nova functional tier
# (real Nova and placement) and the attestation tier against libvirt's
# virt-qemu-sev-validate. Closes with "N passed, N failed, N skipped" and
# fails when a test failed or when no test ran.
#   tools/run-tests.sh [--nova SERIES] [stestr filter regex]
# --nova: the Nova release to test against (2025.1, 2025.2, 2026.1 or
# 2026.2; default the newest), in its own virtualenv under its upper
# constraints (tools/setup-env.sh --nova); the Nova tier runs in each
# concurrency mode of that release's nova-compute.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
releases="$top/nova_sev/tests/data/upper-constraints/releases.txt"
newest=$(awk '!/^#/ && NF {s = $1} END {print s}' "$releases")
series=$newest
if [ "${1:-}" = "--nova" ]; then
    series="${2:-}"
    shift 2 || shift
fi
modes=$(awk -v s="$series" '$1 == s {print $4}' "$releases")
if [ -z "$modes" ]; then
    echo "run-tests: no Nova release '$series' in $releases" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
"$top/tools/setup-env.sh" --test --nova "$series" ||
    { echo "0 passed, 1 failed"; exit 1; }
if [ "$series" = "$newest" ]; then
    venv="${NOVA_SEV_VENV:-$top/.venv}"
else
    venv="${NOVA_SEV_VENV:-$top/.venv-$series}"
fi
export PATH="$venv/bin:$PATH"
echo "run-tests: Nova $series ($("$venv/bin/python" -c \
    'from importlib import metadata; print(metadata.version("nova"))')," \
    "nova-compute on ${modes//,/ then })" >&2
# No test skips for want of the real parts (libvirt, QEMU, Nova, the
# attestation peer): setup-env installs them, and a missing one is an error.

lint_failed=0
"$venv/bin/flake8" nova_sev nova tools || lint_failed=1

# -- The Nova tier in each concurrency mode of the release ------------------
# nova.monkey_patch reads OS_NOVA_DISABLE_EVENTLET_PATCHING when Nova's test
# package is imported, and patches (eventlet) or not for the whole process.
# So the tests of the filter that are in nova_sev/tests/functional/nova_driver
# run in runs of their own, one per mode of the release, the default first
# (eventlet up to 2026.1, native threads in 2026.2), and the other tests in
# one more run, never patched. All runs are loaded into one stestr run,
# which the closing line counts.
nova_tier='^nova_sev\.tests\.functional\.nova_driver\.'
work=$(mktemp -d)
stestr_rc=0
# stestr list reads the repository that stestr run creates: a fresh clone
# has none yet.
[ -d "$top/.stestr" ] || "$venv/bin/stestr" init >/dev/null
if ! "$venv/bin/stestr" list "$@" >"$work/all.list" 2>"$work/list.err"; then
    cat "$work/list.err" >&2
    echo "run-tests: stestr could not list the tests" >&2
    rm -rf "$work"
    echo "0 passed, 1 failed"
    exit 1
fi
grep -E "$nova_tier" "$work/all.list" >"$work/nova-tier.list"
grep -vE "$nova_tier" "$work/all.list" >"$work/other.list"
# run NAME LIST [VARIABLE=VALUE]: one stestr run of LIST, kept as NAME.
run() {
    local name=$1 list=$2 rc
    shift 2
    [ -s "$list" ] || return 0
    env "$@" "$venv/bin/stestr" run \
        --concurrency "${NOVA_SEV_CONCURRENCY:-2}" \
        --load-list "$list" </dev/null
    rc=$?
    [ "$rc" -eq 0 ] || stestr_rc=$rc
    "$venv/bin/stestr" last --subunit >"$work/$name.subunit"
}
# Nova's nova/test.py monkey patches on import up to 2026.1 unless told
# not to: the other tests run unpatched (eventlet would deadlock those that
# block in real threads, such as reading a configuration from a pipe).
run other "$work/other.list" OS_NOVA_DISABLE_EVENTLET_PATCHING=true
for mode in $(echo "$modes" | tr ',' ' '); do
    case "$mode" in
        threading) disable=true ;;
        *) disable=false ;;
    esac
    echo "run-tests: the Nova tier on $mode" >&2
    run "nova-$mode" "$work/nova-tier.list" \
        OS_NOVA_DISABLE_EVENTLET_PATCHING=$disable
done
if ls "$work"/*.subunit >/dev/null 2>&1; then
    cat "$work"/*.subunit | "$venv/bin/stestr" load >/dev/null
else
    echo "run-tests: no test matches the filter" >&2
    rm -rf "$work"
    echo "0 passed, 1 failed"
    exit 1
fi
rm -rf "$work"
# ----------------------------------------------------------------------------

"$venv/bin/stestr" last --subunit | "$venv/bin/python" \
    "$top/tools/count-results.py" --extra-failed "$lint_failed" \
    --runner-rc "$stestr_rc"
