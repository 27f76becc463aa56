#!/usr/bin/env bash
# Queue benchmark: salesai's claim+complete against pgbench running the bare SQL pattern
# (UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1), then UPDATE to done) with
# the same number of clients, in the same run, on the same PostgreSQL.
#
# Usage: scripts/bench-queue.sh [ADMIN_URL] [JOBS]
#   ADMIN_URL  a PostgreSQL URL allowed to create databases [postgres://postgres@127.0.0.1:5432/postgres]
#   JOBS       jobs per salesai measurement [10000]
set -euo pipefail
ADMIN_URL=${1:-postgres://postgres@127.0.0.1:5432/postgres}
JOBS=${2:-10000}
CLIENTS=8
BIN=${SALESAI_BIN:-target/release/salesai}
DB=salesai_bench_$$
BASE=${ADMIN_URL%/*}
WORK=$(mktemp -d)
trap 'psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || cargo build --release -p salesai
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB"

echo "== machine"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(psql "$ADMIN_URL" -tAc 'SHOW server_version')"

echo "== pgbench baseline: bare SKIP LOCKED claim + done, $CLIENTS clients, 20 s"
psql "$BASE/$DB" -q <<'SQL'
CREATE TABLE pgbench_jobs (id BIGSERIAL PRIMARY KEY, status TEXT NOT NULL, locked_by TEXT);
INSERT INTO pgbench_jobs (status) SELECT 'queued' FROM generate_series(1, 300000);
CREATE INDEX pgbench_jobs_queued ON pgbench_jobs (id) WHERE status = 'queued';
VACUUM ANALYZE pgbench_jobs;
SQL
cat > "$WORK/claim.sql" <<'SQL'
UPDATE pgbench_jobs SET status = 'running', locked_by = 'w' WHERE id = (SELECT id FROM pgbench_jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id AS job_id \gset
UPDATE pgbench_jobs SET status = 'done' WHERE id = :job_id;
SQL
pgbench -n -c "$CLIENTS" -j 2 -T 20 -f "$WORK/claim.sql" "$BASE/$DB" 2>&1 | grep -E "^(number of transactions actually processed|tps|latency average)"
psql "$BASE/$DB" -qc "DROP TABLE pgbench_jobs"

echo "== salesai bench queue (PostgreSQL), $JOBS jobs, $CLIENTS clients"
DATABASE_URL="$BASE/$DB" "$BIN" bench queue --jobs "$JOBS" --clients "$CLIENTS" --batch 1,10
echo "== the same, batch 1 as two calls (claim, then complete), for comparison"
DATABASE_URL="$BASE/$DB" "$BIN" bench queue --jobs "$JOBS" --clients "$CLIENTS" --batch 1 --two-calls

echo "== salesai bench queue (SQLite), $JOBS jobs, $CLIENTS clients"
DATABASE_URL="sqlite://$WORK/bench.db" "$BIN" bench queue --jobs "$JOBS" --clients "$CLIENTS" --batch 1,10
