#!/usr/bin/env bash
# Prepare this machine for nova-sev: distribution packages from bindep.txt
# and a virtualenv holding nova-sev and, with --test, everything the test
# suite needs (the real Nova, placement, stestr, ...).
#   tools/setup-env.sh [--test] [--nova SERIES]
# --nova picks the Nova release of the test virtualenv (a series of
# nova_sev/tests/data/upper-constraints/releases.txt; default the newest):
# that release's Nova and placement, and every package under that release's
# upper constraints, in .venv (the newest) or .venv-SERIES (the others).
#
# Idempotent and non-interactive: safe to run on every call, as root on a
# fresh Debian 12 machine or in CI. Prints progress on stderr only.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# libvirt-python builds from source against libvirt-dev: "compile" is always
# needed; --test adds the packages of the test suite.
profile=""
profiles="compile"
series=""
while [ $# -gt 0 ]; do
    case "$1" in
        --test) profile="test"; profiles="compile test" ;;
        --nova) series="${2:-}"; shift ;;
        *) echo "setup-env: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
releases="$top/nova_sev/tests/data/upper-constraints/releases.txt"
newest=$(awk '!/^#/ && NF {s = $1} END {print s}' "$releases")
series="${series:-$newest}"
# shellcheck disable=SC2046
set -- $(awk -v s="$series" '$1 == s {print $2, $3}' "$releases")
if [ $# -ne 2 ]; then
    echo "setup-env: no Nova release $series in $releases" >&2
    exit 2
fi
nova_version=$1
placement_version=$2
constraints="$top/nova_sev/tests/data/upper-constraints/$series.txt"
if [ "$series" = "$newest" ]; then
    venv="${NOVA_SEV_VENV:-$top/.venv}"
else
    venv="${NOVA_SEV_VENV:-$top/.venv-$series}"
fi
python="${PYTHON:-python3}"

say() { echo "setup-env: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# 1. A virtualenv with bindep, which then tells us the missing packages.
if [ ! -x "$venv/bin/python" ]; then
    say "creating virtualenv $venv"
    "$python" -m venv "$venv"
fi
log="$venv/setup-env.log"
# pip's output goes to a log, shown only when pip fails.
pip() {
    if ! "$venv/bin/python" -m pip --disable-pip-version-check -q "$@" \
            >>"$log" 2>&1; then
        cat "$log" >&2
        say "pip install failed (log: $log)"
        return 1
    fi
}
if [ ! -x "$venv/bin/bindep" ]; then
    pip install 'bindep>=2.11.0'
fi

# 2. Distribution packages (bindep.txt). bindep exits 1 when some are missing.
missing=$(cd "$top" && "$venv/bin/bindep" -b $profiles || true)
if [ -n "$missing" ]; then
    say "installing distribution packages:" $missing
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq >&2
    # shellcheck disable=SC2086
    as_root apt-get install -y -q --no-install-recommends $missing >&2
fi

# 3. Python packages, only when the requirement files changed. The test
# virtualenv is a Nova environment as the release's upper constraints pin
# it: Nova and placement at the release's versions, every other package
# (oslo, libvirt-python, SQLAlchemy...) at the release's pin.
reqs="$top/requirements.txt"
[ -n "$profile" ] && reqs="$reqs $top/test-requirements.txt $constraints"
# shellcheck disable=SC2086
stamp_want=$( (cat $reqs "$top/setup.cfg"
    echo "$series $nova_version $placement_version") | sha256sum |
    cut -d' ' -f1)
stamp_file="$venv/.nova-sev-${profile:-run}.stamp"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_want" ]; then
    say "installing Python packages into $venv (Nova $series)"
    args=(-r "$top/requirements.txt")
    [ -n "$profile" ] && args+=(-c "$constraints"
        -r "$top/test-requirements.txt" "nova==$nova_version"
        "openstack-placement==$placement_version")
    pip install "${args[@]}"
    # setuptools' "compat" editable mode puts the source tree's path in a
    # .pth file; its default mode installs an import hook whose own imports
    # (pathlib, re...) every nova-sev command would pay at start-up.
    pip install --no-deps -e "$top" --config-settings editable_mode=compat
    echo "$stamp_want" > "$stamp_file"
fi
say "ready: $venv"
