#!/usr/bin/env bash
# systemd-analyze, which scripts/test.d/20-systemd.sh uses to verify and score
# systemd/voiceblock.service offline. Containers often lack the systemd
# package; installing it starts nothing. Idempotent.
set -euo pipefail
if command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze present ($(systemd-analyze --version | head -1))"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q systemd
