#!/usr/bin/env bash
# Rolls back the last scripts/deploy.sh: migrates the schema down to the version recorded
# before that deploy (with the newer binary, which knows the down steps), switches `current`
# back, restarts, runs the smoke test and tells the ops channel (SLACK_WEBHOOK_URL).
#
# Usage: scripts/rollback.sh    (same settings as deploy.sh)
set -euo pipefail
ROOT=${SALESAI_ROOT:-/opt/salesai}
ENV_FILE=${SALESAI_ENV_FILE:-/etc/salesai/salesai.env}
RESTART=${SALESAI_RESTART_CMD:-systemctl restart salesai}
log() { printf '== %s\n' "$*"; }
fail() { printf 'rollback FAILED: %s\n' "$*" >&2; exit 1; }

if [ -f "$ENV_FILE" ]; then set -a; . "$ENV_FILE"; set +a; fi
[ -f "$ROOT/deploy.state" ] || fail "no $ROOT/deploy.state: nothing was deployed with scripts/deploy.sh"
. "$ROOT/deploy.state"
[ -n "${PREVIOUS_RELEASE:-}" ] && [ -x "$PREVIOUS_RELEASE/salesai" ] || fail "no previous release recorded; nothing to roll back to"
[ "$PREVIOUS_RELEASE" != "$CURRENT_RELEASE" ] || fail "the previous release is the current one"

log "migrate down to schema $PREVIOUS_SCHEMA (with $(basename "$CURRENT_RELEASE"))"
"$CURRENT_RELEASE/salesai" migrate down --to "$PREVIOUS_SCHEMA"

log "switch back to $(basename "$PREVIOUS_RELEASE")"
ln -sfn "$PREVIOUS_RELEASE" "$ROOT/current.new"
mv -T "$ROOT/current.new" "$ROOT/current"
cat > "$ROOT/deploy.state" <<STATE
CURRENT_RELEASE=$PREVIOUS_RELEASE
PREVIOUS_RELEASE=
PREVIOUS_SCHEMA=$PREVIOUS_SCHEMA
ROLLED_BACK_FROM=$CURRENT_RELEASE
STATE

log "restart"
eval "$RESTART"

log "smoke"
STATUS=ok
"$PREVIOUS_RELEASE/salesai" smoke || STATUS="smoke FAILED"

MESSAGE="↩️ salesai rolled back from $(basename "$CURRENT_RELEASE") to $(basename "$PREVIOUS_RELEASE") (schema $PREVIOUS_SCHEMA): $STATUS"
if [ -n "${SLACK_WEBHOOK_URL:-}" ]; then
  curl -fsS -X POST -H 'content-type: application/json' \
    --data "$(printf '{"text": "%s"}' "$MESSAGE")" "$SLACK_WEBHOOK_URL" >/dev/null \
    || printf 'could not notify the webhook\n' >&2
fi
log "$MESSAGE"
[ "$STATUS" = ok ] || exit 1
