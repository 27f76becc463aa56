#!/usr/bin/env bash
# Deploys a salesai binary on a systemd host with releases side by side:
#
#   $SALESAI_ROOT/releases/<version>/salesai     every release ever installed
#   $SALESAI_ROOT/current -> releases/<version>  what the service runs (deploy/salesai.service)
#   $SALESAI_ROOT/deploy.state                   the previous release and its schema version
#
# Steps: install → preflight (nothing changed yet) → backup → migrate → switch → restart →
# smoke; a failed smoke runs scripts/rollback.sh.
#
# Usage: scripts/deploy.sh NEW_BINARY [VERSION]
# Settings come from $SALESAI_ENV_FILE (default /etc/salesai/salesai.env, the unit's
# EnvironmentFile); SALESAI_SMOKE_URL and SALESAI_SMOKE_TOKEN (an admin token) drive the smoke
# test; SALESAI_RESTART_CMD overrides `systemctl restart salesai`.
set -euo pipefail
NEW_BIN=${1:?usage: scripts/deploy.sh NEW_BINARY [VERSION]}
ROOT=${SALESAI_ROOT:-/opt/salesai}
ENV_FILE=${SALESAI_ENV_FILE:-/etc/salesai/salesai.env}
RESTART=${SALESAI_RESTART_CMD:-systemctl restart salesai}
HERE=$(cd "$(dirname "$0")" && pwd)
log() { printf '== %s\n' "$*"; }
fail() { printf 'deploy FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$NEW_BIN" ] || fail "$NEW_BIN is not an executable"
if [ -f "$ENV_FILE" ]; then set -a; . "$ENV_FILE"; set +a; fi
VERSION=${2:-$("$NEW_BIN" --version | awk '{print $2}')-$(date -u +%Y%m%d%H%M%S)}

log "install $VERSION"
mkdir -p "$ROOT/releases/$VERSION"
install -m 0755 "$NEW_BIN" "$ROOT/releases/$VERSION/salesai"
NEW="$ROOT/releases/$VERSION/salesai"
PREVIOUS=$(readlink -f "$ROOT/current" 2>/dev/null || true)

log "preflight (nothing changed yet)"
"$NEW" preflight || fail "preflight failed; the running release is untouched"

SCHEMA=$("$NEW" migrate status | grep -o 'schema at [0-9]*' | awk '{print $3}')
log "backup (schema $SCHEMA)"
"$NEW" backup create

log "migrate"
"$NEW" migrate up

log "switch to $VERSION"
ln -sfn "releases/$VERSION" "$ROOT/current.new"
mv -T "$ROOT/current.new" "$ROOT/current"
cat > "$ROOT/deploy.state" <<STATE
CURRENT_RELEASE=$ROOT/releases/$VERSION
PREVIOUS_RELEASE=$PREVIOUS
PREVIOUS_SCHEMA=$SCHEMA
STATE

log "restart"
eval "$RESTART"

log "smoke"
if ! "$NEW" smoke; then
  printf 'smoke failed after deploying %s: rolling back\n' "$VERSION" >&2
  "$HERE/rollback.sh" || true
  fail "smoke test failed; rolled back"
fi
log "deployed $VERSION"
