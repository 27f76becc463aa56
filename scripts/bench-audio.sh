#!/usr/bin/env bash
# Audio preparation benchmark: salesai (decode → 16 kHz mono → loudness → chunk plan → FLAC
# chunks) against `ffmpeg -i in.mp3 -ac 1 -ar 16000 -c:a flac out.flac`, on the same 60-minute
# 128 kbps stereo MP3 of synthesised speech, in the same run. Reports CPU time (user+sys) and
# peak RSS of each, measured by GNU time.
#
# Needs: ffmpeg, espeak-ng, sox (Debian), GNU time (/usr/bin/time).
# Usage: scripts/bench-audio.sh [MINUTES]
set -euo pipefail
MINUTES=${1:-60}
BIN=${SALESAI_BIN:-target/release/salesai}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || cargo build --release -p salesai

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(ffmpeg -version | head -1)"

echo "== input: ${MINUTES} min, 128 kbps stereo 44.1 kHz MP3 of espeak-ng speech"
espeak-ng -v en -s 150 -w "$WORK/para.wav" "Thank you for taking the time to talk with me today. \
How do you take orders at the moment? We write every order by hand, and on busy nights the \
kitchen loses tickets. That costs us about two thousand dollars a month. I am the owner and I \
decide, but my partner wants to see the numbers first. Could we try it for a week?"
SECS=$(soxi -D "$WORK/para.wav")
REPEAT=$(python3 -c "import math; print(math.ceil($MINUTES*60/$SECS) - 1)")
sox "$WORK/para.wav" -r 44100 -c 2 "$WORK/long.wav" repeat "$REPEAT" trim 0 $((MINUTES * 60))
ffmpeg -loglevel error -y -i "$WORK/long.wav" -codec:a libmp3lame -b:a 128k "$WORK/in.mp3"
ls -l "$WORK/in.mp3" | awk '{printf "%.1f MB\n", $5/1048576}'
rm "$WORK/long.wav"

measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%U %S %M %e" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
  read -r user sys rss wall <"$WORK/time"
  printf "%-8s cpu %6.2f s (user %.2f + sys %.2f)  peak RSS %6.1f MB  wall %6.2f s\n" \
    "$label" "$(echo "$user + $sys" | bc)" "$user" "$sys" "$(echo "$rss / 1024" | bc -l)" "$wall"
}

echo "== ffmpeg baseline: -ac 1 -ar 16000 -c:a flac (one file)"
measure ffmpeg ffmpeg -loglevel error -y -i "$WORK/in.mp3" -ac 1 -ar 16000 -c:a flac "$WORK/out.flac"
ls -l "$WORK/out.flac" | awk '{printf "         output %.1f MB\n", $5/1048576}'
echo "== salesai bench audio (600 s FLAC chunks)"
measure salesai "$BIN" bench audio "$WORK/in.mp3" --json
python3 -c "import json; d=json.load(open('$WORK/out')); print('         output %.1f MB in %d chunks, %.0f s of audio' % (sum(d['chunk_bytes'])/1048576, d['chunks'], d['duration_s']))"
echo "== salesai bench audio --diarize (the same, plus the speaker turns of issue #14)"
measure diarize "$BIN" bench audio "$WORK/in.mp3" --json --diarize
python3 -c "import json; d=json.load(open('$WORK/out')); v=d['diarization']; print('         speaker turns: %.2f s wall in-process, %d speakers, %d turns (%d unplaced)' % (v['diarize_s'], v['speakers'], v['turns'], v['unplaced_turns']))"
