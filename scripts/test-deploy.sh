#!/usr/bin/env bash
# Exercises scripts/deploy.sh and scripts/rollback.sh in a scratch root, with a restart command
# that runs `current/salesai serve` in the background instead of systemd: deploy release A,
# deploy release B over it (backup, migrate, switch, smoke), roll back to A (migrate down to
# the recorded schema, switch, smoke, webhook). Used by .ci/run.
#
# Usage: scripts/test-deploy.sh [BINARY]
set -euo pipefail
BIN=${1:-target/debug/salesai}
BIN=$(readlink -f "$BIN")
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
HOOK_PORT=$((20000 + RANDOM % 20000))
cleanup() {
  [ -f "$WORK/server.pid" ] && kill "$(cat "$WORK/server.pid")" 2>/dev/null || true
  [ -n "${HOOK_PID:-}" ] && kill "$HOOK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A webhook sink that records what rollback.sh posts.
python3 - "$HOOK_PORT" "$WORK/hook.log" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        open(out, "ab").write(body + b"\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
HOOK_PID=$!

cat > "$WORK/salesai.env" <<ENV
SALESAI_DATA_DIR=$WORK/data
SALESAI_BIND=127.0.0.1:$PORT
SALESAI_LOG=warn
SALESAI_SMOKE_URL=http://127.0.0.1:$PORT
SLACK_WEBHOOK_URL=http://127.0.0.1:$HOOK_PORT/hook
ENV
cat > "$WORK/restart.sh" <<RESTART
#!/usr/bin/env bash
[ -f "$WORK/server.pid" ] && kill "\$(cat "$WORK/server.pid")" 2>/dev/null && sleep 1
set -a; . "$WORK/salesai.env"; set +a
"$WORK/root/current/salesai" serve >>"$WORK/server.log" 2>&1 &
echo \$! > "$WORK/server.pid"
for _ in \$(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && exit 0; sleep 0.1; done
echo "the server did not start" >&2; exit 1
RESTART
chmod +x "$WORK/restart.sh"
export SALESAI_ROOT=$WORK/root SALESAI_ENV_FILE=$WORK/salesai.env SALESAI_RESTART_CMD=$WORK/restart.sh
(set -a; . "$WORK/salesai.env"; set +a; "$BIN" migrate up >/dev/null)
export SALESAI_SMOKE_TOKEN=$(set -a; . "$WORK/salesai.env"; set +a; "$BIN" token create --name smoke --role admin)

"$HERE/deploy.sh" "$BIN" release-a
"$HERE/deploy.sh" "$BIN" release-b
[ "$(readlink "$WORK/root/current")" = releases/release-b ] || { echo "current is not release-b"; exit 1; }
ls "$WORK/data/backups"/backup_*.jsonl.gz >/dev/null || { echo "no backup was taken"; exit 1; }
"$HERE/rollback.sh"
[ "$(readlink -f "$WORK/root/current")" = "$WORK/root/releases/release-a" ] || { echo "current is not release-a after rollback"; exit 1; }
grep -q "rolled back from release-b to release-a" "$WORK/hook.log" || { echo "the webhook was not told"; exit 1; }
if "$HERE/rollback.sh" 2>"$WORK/err"; then echo "a second rollback should refuse"; exit 1; fi
grep -q "no previous release" "$WORK/err"
echo "deploy, rollback and their refusals work"
