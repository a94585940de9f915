#!/usr/bin/env bash
# The Yocto layer, as far as it can be checked without bitbake (not
# installable here): the generated crates file matches Cargo.lock, and
# oelint-adv finds nothing in any recipe. Only the homepage check is
# suppressed: it fetches HOMEPAGE over the network.
set -euo pipefail
cd "$(dirname "$0")/../.."

yocto/update-crates --check

OELINT="${VOICEBLOCK_CACHE:-$HOME/.cache/voiceblock}/oelint-venv/bin/oelint-adv"
if [ ! -x "$OELINT" ]; then
  echo "oelint-adv missing at $OELINT: run scripts/setup (scripts/setup.d/30-oelint.sh installs it)" >&2
  exit 1
fi

mapfile -t recipes < <(find yocto/meta-voiceblock -name '*.bb' -o -name '*.bbappend' | sort)
if [ ${#recipes[@]} -eq 0 ]; then
  echo "no recipes found under yocto/meta-voiceblock" >&2
  exit 1
fi
failed=0
for r in "${recipes[@]}"; do
  # oelint-adv exits 0 even with findings in some modes: fail on any output.
  out=$("$OELINT" --quiet --release scarthgap --suppress oelint.vars.homepageping "$r" 2>&1) || true
  if [ -n "$out" ]; then
    printf '%s\n' "$out"
    failed=1
  else
    echo "oelint-adv: $r clean"
  fi
done
exit $failed
