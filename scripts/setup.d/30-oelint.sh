#!/usr/bin/env bash
# oelint-adv, the BitBake recipe linter scripts/test.d/30-yocto.sh runs on
# yocto/meta-voiceblock. Installed from PyPI into its own venv under
# ~/.cache/voiceblock (pinned: a new release can add rules and fail CI on an
# unchanged recipe). Idempotent: a venv with the pinned version is kept.
set -euo pipefail

OELINT_VERSION=9.11.2
VENV="${VOICEBLOCK_CACHE:-$HOME/.cache/voiceblock}/oelint-venv"

if [ -x "$VENV/bin/oelint-adv" ] \
   && [ "$("$VENV/bin/python" -m pip show oelint-adv 2>/dev/null | sed -n 's/^Version: //p')" = "$OELINT_VERSION" ]; then
  echo "oelint-adv $OELINT_VERSION present in $VENV"
  exit 0
fi

rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "oelint-adv==$OELINT_VERSION"
"$VENV/bin/oelint-adv" --version
