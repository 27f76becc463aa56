#!/usr/bin/env bash
# Memory of a 1 GB upload through the API: starts `salesai serve` (release build, SQLite and a
# local folder in a scratch directory, workers off so only the upload is measured), uploads a
# 1 GiB WAV with curl, and reads the server's peak RSS (VmHWM) before and after.
#
# Usage: scripts/bench-upload.sh [SIZE_MB]
set -euo pipefail
SIZE_MB=${1:-1024}
BIN=${SALESAI_BIN:-$(pwd)/target/release/salesai}
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
[ -x "$BIN" ] || cargo build --release -p salesai
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

# A WAV header followed by SIZE_MB of samples (sparse on disk; the server sees every byte).
python3 - "$WORK/big.wav" "$SIZE_MB" <<'PY'
import struct, sys
path, mb = sys.argv[1], int(sys.argv[2])
size = mb * 1024 * 1024
with open(path, "wb") as f:
    f.write(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", size))
    f.truncate(44 + size)
PY

cd "$WORK"
SALESAI_BIND=127.0.0.1:$PORT SALESAI_MAX_UPLOAD_MB=$((SIZE_MB + 10)) SALESAI_LOG=warn "$BIN" serve --no-workers 2>server.log &
PID=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$("$BIN" token create --name bench --role service)
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "idle server: VmHWM $(awk '/VmHWM/ {print $2/1024 " MB"}' /proc/$PID/status)"
START=$(date +%s.%N)
curl -fsS -o response.json -H "Authorization: Bearer $TOKEN" \
  -F "audio=@big.wav;type=audio/wav" -F customer_number=BENCH-1 -F product_line=default \
  "http://127.0.0.1:$PORT/api/v1/conversations"
END=$(date +%s.%N)
echo "upload of ${SIZE_MB} MB: $(python3 -c "print(round($END - $START, 2))") s, answer $(cat response.json)"
echo "after upload: VmHWM $(awk '/VmHWM/ {print $2/1024 " MB"}' /proc/$PID/status) (peak RSS of the server process)"
ls -l data/blobs/uploads/*/*/* | awk '{printf "stored blob: %.0f MB\n", $5/1048576}'
