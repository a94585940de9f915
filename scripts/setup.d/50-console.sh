#!/usr/bin/env bash
# Installs what the web console's browser test (scripts/test.d/50-console.sh)
# drives: Debian's chromium (headless, fake microphone from a WAV file) and
# playwright-core from npm (the driver only: it downloads no browser) into
# ~/.cache/voiceblock/node, outside the checkout.
# Idempotent: a second run only checks.
set -euo pipefail

CACHE="${VOICEBLOCK_CACHE:-$HOME/.cache/voiceblock}"
NODE_DIR="$CACHE/node"
PLAYWRIGHT_CORE_VERSION="1.57.0"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
log() { printf '\n== %s\n' "$*"; }

missing=()
dpkg -s chromium >/dev/null 2>&1 || missing+=(chromium)
# Node from any source will do (NodeSource's nodejs ships npm and conflicts
# with Debian's npm package): install Debian's only when there is none.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

have=$(node -e "try { console.log(require('$NODE_DIR/node_modules/playwright-core/package.json').version) } catch (e) {}" 2>/dev/null || true)
if [ "$have" != "$PLAYWRIGHT_CORE_VERSION" ]; then
  log "installing playwright-core@$PLAYWRIGHT_CORE_VERSION into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  # No browser download: the test uses Debian's chromium.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund \
    --prefix "$NODE_DIR" "playwright-core@$PLAYWRIGHT_CORE_VERSION"
fi
log "console test tools ready: $(command -v chromium), playwright-core $PLAYWRIGHT_CORE_VERSION"
