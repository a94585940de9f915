#!/usr/bin/env bash
# Human speech for the speech-to-text tests and `bench stt-window`: every
# other test voice is synthesized (Piper, espeak-ng), and whisper hears people
# differently. The pocketsphinx 5.1.1 source package on PyPI (BSD-2-Clause,
# CMU) ships recordings of people with their transcripts:
#   test/data/librivox/  5 sentences read by a LibriVox volunteer (public
#                        domain), 3-7 s, with `transcription`;
#   test/data/cards/     5 short phrases with number words ("eight of spades
#                        four of clubs seven of hearts"), 1-3.5 s, with
#                        `cards.transcription`.
# Only those two folders (and the licence) are kept, under
# ~/.cache/voiceblock/speech/pocketsphinx-5.1.1.
#
# Russian: Debian's asterisk-core-sounds-ru-wav 1.6.1-1 (CC-BY-3.0, recorded
# by Maxim Topal, ivrvoice.ru): 576 telephone prompts spoken by a person at
# 8 kHz, with their texts in asterisk-core-sounds-ru's core-sounds-ru.txt.
# Both .deb files come straight from deb.debian.org (any distribution can
# fetch them) and are unpacked with dpkg-deb into
# ~/.cache/voiceblock/speech/asterisk-ru (sounds/ and core-sounds-ru.txt).
#
# sha256 verified; idempotent.
set -euo pipefail

CACHE="${VOICEBLOCK_CACHE:-$HOME/.cache/voiceblock}"
DIR="$CACHE/speech"
NAME="pocketsphinx-5.1.1"
URL="https://files.pythonhosted.org/packages/61/e7/13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/$NAME.tar.gz"
SHA256="675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"

log() { printf '\n== %s\n' "$*"; }
mkdir -p "$DIR"

# fetch URL SHA256 FILE: download unless FILE already has that sha256.
fetch() {
  if [ -f "$3" ] && echo "$2  $3" | sha256sum -c --status; then return 0; fi
  curl -fsSL --retry 3 -o "$3.part" "$1"
  if ! echo "$2  $3.part" | sha256sum -c --status; then
    echo "$1: sha256 $(sha256sum "$3.part" | cut -d' ' -f1), expected $2" >&2
    rm -f "$3.part"
    exit 1
  fi
  mv "$3.part" "$3"
}

RU="$DIR/asterisk-ru"
DEBIAN_POOL="http://deb.debian.org/debian/pool/main/a/asterisk-core-sounds"
RU_TEXT_DEB="asterisk-core-sounds-ru_1.6.1-1_all.deb"
RU_TEXT_SHA256="28a61616bb0cd3345a7ea532dec4df9f071e5d0fa9f8c1a563ea9669002f39ab"
RU_WAV_DEB="asterisk-core-sounds-ru-wav_1.6.1-1_all.deb"
RU_WAV_SHA256="ccbfaebfa450b7a9ddf644ae0f3d1e9017d5df7c0aebe816e946345589d38201"
if [ ! -f "$RU/.complete" ]; then
  log "downloading Russian telephone prompts spoken by a person (19 MB, deb.debian.org)"
  fetch "$DEBIAN_POOL/$RU_TEXT_DEB" "$RU_TEXT_SHA256" "$DIR/$RU_TEXT_DEB"
  fetch "$DEBIAN_POOL/$RU_WAV_DEB" "$RU_WAV_SHA256" "$DIR/$RU_WAV_DEB"
  rm -rf "$RU" "$DIR/deb"
  dpkg-deb -x "$DIR/$RU_TEXT_DEB" "$DIR/deb"
  dpkg-deb -x "$DIR/$RU_WAV_DEB" "$DIR/deb"
  mkdir -p "$RU"
  mv "$DIR/deb/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU" "$RU/sounds"
  gunzip -c "$DIR/deb/usr/share/doc/asterisk-core-sounds-ru/core-sounds-ru.txt.gz" > "$RU/core-sounds-ru.txt"
  cp "$DIR/deb/usr/share/doc/asterisk-core-sounds-ru-wav/copyright" "$RU/copyright"
  rm -rf "$DIR/deb" "$DIR/$RU_TEXT_DEB" "$DIR/$RU_WAV_DEB"
  touch "$RU/.complete"
fi
log "Russian speech ready: $RU"

if [ -f "$DIR/$NAME/.complete" ]; then
  log "human speech ready: $DIR/$NAME"
  exit 0
fi

archive="$DIR/$NAME.tar.gz"
log "downloading $NAME.tar.gz (34 MB, PyPI) for its recordings of human speech"
fetch "$URL" "$SHA256" "$archive"
rm -rf "${DIR:?}/$NAME"
tar -xzf "$archive" -C "$DIR" \
  "$NAME/LICENSE" "$NAME/test/data/librivox" "$NAME/test/data/cards"
touch "$DIR/$NAME/.complete"
# The extracted files are all that is used; the archive is not needed again.
rm -f "$archive"
log "human speech ready: $DIR/$NAME"
