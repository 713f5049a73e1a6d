#!/usr/bin/env bash
# Set this machine up and print its SEV capability report.
#   tools/host-check.sh [nova-sev host-check options, e.g. --format json]
# Exit status is the report's: 0 SEV usable, 1 not usable, 2 could not check.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/tools/setup-env.sh"
exec "${NOVA_SEV_VENV:-$top/.venv}/bin/nova-sev" host-check "$@"
