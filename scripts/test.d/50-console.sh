#!/usr/bin/env bash
# The web console in real headless Chromium: starts `voiceblock run` with its
# HTTP API on loopback, feeds the talk page a fake microphone (a WAV of the
# caller, spoken by the box's own Piper voice), checks the greeting plays and
# the caller's words come back as a transcript, then that every page renders
# the call that session left. Screenshots and the page weight go to
# ${VOICEBLOCK_ARTIFACTS:-target/ci-artifacts}/console. Bounded: the browser
# part stops itself after 12 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${VOICEBLOCK_CACHE:-$HOME/.cache/voiceblock}"
NODE_DIR="$CACHE/node"
ARTIFACTS="$(realpath -m "${VOICEBLOCK_ARTIFACTS:-target/ci-artifacts}")/console"
[ -x /usr/bin/chromium ] && [ -d "$NODE_DIR/node_modules/playwright-core" ] || {
  echo "chromium or playwright-core missing: run scripts/setup (scripts/setup.d/50-console.sh)" >&2
  exit 1
}

# VOICEBLOCK_BIN: an already built binary (skips the build).
bin="${VOICEBLOCK_BIN:-}"
if [ -z "$bin" ]; then
  cargo build -q -p voiceblock
  bin="${CARGO_TARGET_DIR:-target}/debug/voiceblock"
fi
tmp=$(mktemp -d)
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api=$(free_port)
sip=$(free_port)

# The caller: 9 s of silence (the greeting plays), the words, 6 s of silence.
# Chromium loops the file.
"$bin" say --lang en --rate 16000 --out "$tmp/words.wav" "Hi, I would like to book a table for four people." >/dev/null
sox -q -n -r 16000 -c 1 -b 16 "$tmp/lead.wav" trim 0 9
sox -q -n -r 16000 -c 1 -b 16 "$tmp/tail.wav" trim 0 6
sox -q "$tmp/lead.wav" "$tmp/words.wav" "$tmp/tail.wav" -b 16 "$tmp/caller.wav"

STATE_DIRECTORY="$tmp" VOICEBLOCK_LOG=info "$bin" run --listen "127.0.0.1:$sip" --rtp-ports 31000-31009 \
  --max-calls 1 --api "127.0.0.1:$api" --db "$tmp/box.db" --records "$tmp/calls" \
  > "$tmp/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 1 360); do
  grep -q "voiceblock: listening" "$tmp/daemon.log" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$tmp/daemon.log" >&2; exit 1; }
  sleep 0.5
done
grep -q "voiceblock: listening" "$tmp/daemon.log" || { echo "the daemon did not start" >&2; cat "$tmp/daemon.log" >&2; exit 1; }

mkdir -p "$ARTIFACTS"
status=0
NODE_PATH="$NODE_DIR/node_modules" timeout 720 node scripts/console/browser-test.cjs \
  "http://127.0.0.1:$api" "$tmp/caller.wav" "$ARTIFACTS" || status=$?
cp "$tmp/daemon.log" "$ARTIFACTS/daemon.log"
if [ $status != 0 ]; then
  echo "console browser test failed ($status); daemon log and screenshots in $ARTIFACTS" >&2
  exit $status
fi
