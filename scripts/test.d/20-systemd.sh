#!/usr/bin/env bash
# systemd/voiceblock.service, checked offline:
# - `systemd-analyze verify` exits 0 even on warnings, so any output fails;
# - `systemd-analyze security --offline=true` must score 2.5 or better. Its
#   --threshold is in tenths (systemd 252: default 100 = exposure 10.0), so
#   2.5 is --threshold=25.
# Both need ExecStart to name an existing executable, and /usr/bin/voiceblock
# is not installed on a build machine: they run on a copy of the unit, in a
# temp dir, with ExecStart rewritten to /bin/true. Nothing else is changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze missing: run scripts/setup (scripts/setup.d/20-systemd.sh installs it)" >&2
  exit 1
fi

unit=systemd/voiceblock.service
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -q '^ExecStart=/usr/bin/voiceblock run$' "$unit" || {
  echo "$unit: ExecStart is not '/usr/bin/voiceblock run' (the recipe installs the binary there)" >&2
  exit 1
}
sed 's#^ExecStart=/usr/bin/voiceblock run$#ExecStart=/bin/true run#' "$unit" > "$tmp/voiceblock.service"

out=$(cd "$tmp" && systemd-analyze verify --man=no ./voiceblock.service 2>&1) || true
if [ -n "$out" ]; then
  printf 'systemd-analyze verify %s:\n%s\n' "$unit" "$out" >&2
  exit 1
fi
echo "systemd-analyze verify: $unit clean"

if ! (cd "$tmp" && systemd-analyze security --offline=true --threshold=25 ./voiceblock.service > "$tmp/security.txt" 2>&1); then
  cat "$tmp/security.txt" >&2
  echo "$unit: exposure above 2.5" >&2
  exit 1
fi
grep 'Overall exposure level' "$tmp/security.txt"
