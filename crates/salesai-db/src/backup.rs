//! Backups: a logical export of every table in one consistent snapshot, restorable into either
//! backend (a SQLite backup restores into PostgreSQL: the path for a team that outgrows one
//! machine).
//!
//! The file is gzip-compressed JSON lines: a header (format, backend, schema version), then per
//! table a `{"table", "columns"}` line followed by one JSON array per row, then an end line with
//! the row counts (a truncated file is detected). Values are canonical whatever the backend:
//! times are integer milliseconds since the epoch, booleans 0/1, JSON columns JSON values. Each
//! table's digest is the XOR of the SHA-256 of its canonical rows (rows are unique by primary
//! key, so the digest does not depend on row order or collation), so a restore into either
//! backend can be compared with the manifest row for row.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use sqlx::{Row, TypeInfo, ValueRef};

use crate::Database;
use salesai_core::store::{StoreError, StoreResult};

/// The file format's name and version.
pub const FORMAT: &str = "salesai-backup/1";

/// The tables, parents before children, with the order rows are written in.
pub const TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("opportunities", "id"),
    ("case_sequences", "period, prefix"),
    ("conversations", "id"),
    ("conversation_stage_events", "id"),
    ("transcript_segments", "conversation_id, seq"),
    ("transcript_chunks", "conversation_id, channel, chunk_index"),
    ("agent_outputs", "conversation_id, agent"),
    ("search_grams", "conversation_id, source"),
    ("analyses", "conversation_id"),
    ("meeting_notes", "conversation_id"),
    ("speaker_turns", "conversation_id"),
    ("voice_profiles", "user_id"),
    ("api_tokens", "id"),
    ("team_managers", "user_id, team"),
    ("identities", "issuer, subject"),
    ("server_facts", "key"),
    ("login_links", "token_hash"),
    ("web_sessions", "id_hash"),
    ("queue_settings", "name"),
    ("jobs", "id"),
    ("job_attempts", "id"),
    ("external_events", "source, event_id"),
    ("slack_messages", "conversation_id, kind"),
    ("alert_incidents", "key"),
    ("node_counters", "node, name, minute"),
];

/// Columns holding JSON (TEXT on SQLite, jsonb on PostgreSQL); checked against PostgreSQL's
/// catalogue by a test.
pub const JSON_COLUMNS: &[(&str, &str)] = &[
    ("opportunities", "contacts"),
    ("conversations", "metadata"),
    ("transcript_chunks", "segments"),
    ("agent_outputs", "output"),
    ("analyses", "result"),
    ("jobs", "payload"),
];

/// Tables whose rows make a database "not empty" for a restore.
const DATA_TABLES: &[&str] = &[
    "users",
    "opportunities",
    "conversations",
    "jobs",
    "api_tokens",
];

/// One table's size and content digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDigest {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
    /// XOR of the SHA-256 of each canonical row, hex.
    pub sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    backend: String,
    schema_version: i64,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Acc {
    rows: u64,
    xor: [u8; 32],
}

impl Acc {
    fn add(&mut self, row: &Map<String, Value>) {
        let hash = Sha256::digest(serde_json::to_vec(row).expect("JSON values serialise"));
        for (a, b) in self.xor.iter_mut().zip(hash.iter()) {
            *a ^= b;
        }
        self.rows += 1;
    }

    fn finish(&self, table: &str) -> TableDigest {
        TableDigest {
            table: table.to_owned(),
            rows: self.rows,
            sha256: hex::encode(self.xor),
        }
    }
}

fn is_json(table: &str, column: &str) -> bool {
    JSON_COLUMNS.contains(&(table, column))
}

fn io(err: std::io::Error) -> StoreError {
    StoreError::Other(format!("backup I/O: {err}"))
}

fn map(err: sqlx::Error) -> StoreError {
    crate::error::map(err)
}

fn line(out: &mut (dyn Write + Send), value: &Value) -> StoreResult<()> {
    serde_json::to_writer(&mut *out, value).map_err(|e| StoreError::Other(e.to_string()))?;
    out.write_all(b"\n").map_err(io)
}

/// A row as its canonical object (sorted keys), JSON columns parsed.
fn canonical(table: &str, columns: &[String], values: Vec<Value>) -> Map<String, Value> {
    columns
        .iter()
        .cloned()
        .zip(values)
        .map(|(c, v)| {
            let v = match v {
                Value::String(s) if is_json(table, &c) => {
                    serde_json::from_str(&s).unwrap_or(Value::String(s))
                }
                other => other,
            };
            (c, v)
        })
        .collect()
}

/// How a PostgreSQL column is read into canonical form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PgKind {
    Int,
    Float,
    Text,
}

fn pg_select(column: &str, data_type: &str) -> (String, PgKind) {
    let q = format!("\"{}\"", column.replace('"', "\"\""));
    match data_type {
        "timestamp with time zone" | "timestamp without time zone" => (
            format!("floor(extract(epoch from {q}) * 1000)::bigint AS {q}"),
            PgKind::Int,
        ),
        "boolean" => (format!("{q}::int::bigint AS {q}"), PgKind::Int),
        "integer" | "smallint" | "bigint" => (format!("{q}::bigint AS {q}"), PgKind::Int),
        "double precision" | "real" | "numeric" => (format!("{q}::float8 AS {q}"), PgKind::Float),
        _ => (format!("{q}::text AS {q}"), PgKind::Text),
    }
}

async fn pg_columns(
    conn: &mut sqlx::PgConnection,
    table: &str,
) -> StoreResult<Vec<(String, String)>> {
    crate::statement::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER' \
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .map_err(map)
}

async fn sqlite_columns(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
) -> StoreResult<Vec<String>> {
    crate::statement::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
        .bind(table)
        .fetch_all(conn)
        .await
        .map_err(map)
}

/// Writes every table of `db` to `out` (uncompressed JSON lines; the caller compresses) from
/// one consistent snapshot, and returns the digests.
pub async fn export(db: &Database, out: &mut (dyn Write + Send)) -> StoreResult<Vec<TableDigest>> {
    let schema_version = db.migrator().current_version().await?;
    let header = Header {
        format: FORMAT.into(),
        backend: db.backend().as_str().into(),
        schema_version,
        created_at: chrono::Utc::now(),
    };
    line(
        out,
        &serde_json::to_value(&header).expect("header serialises"),
    )?;
    let mut digests = Vec::new();
    match db {
        Database::Sqlite(store) => {
            // A deferred transaction: its first read fixes the snapshot (WAL mode), writers go on.
            let mut tx = store.pool().begin().await.map_err(map)?;
            for (table, order) in TABLES {
                let columns = sqlite_columns(&mut tx, table).await?;
                line(
                    out,
                    &serde_json::json!({ "table": table, "columns": columns }),
                )?;
                let mut acc = Acc::default();
                // The columns by name: `SELECT *` would also read the generated ones, which
                // `pragma_table_info` leaves out (and a restore could not write).
                let names = columns
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!("SELECT {names} FROM \"{table}\" ORDER BY {order}");
                let mut rows = crate::statement::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(map)? {
                    let mut values = Vec::with_capacity(row.columns().len());
                    for i in 0..row.columns().len() {
                        let raw = row.try_get_raw(i).map_err(map)?;
                        let v = if raw.is_null() {
                            Value::Null
                        } else {
                            match raw.type_info().name() {
                                "INTEGER" => Value::from(row.try_get::<i64, _>(i).map_err(map)?),
                                "REAL" => Value::from(row.try_get::<f64, _>(i).map_err(map)?),
                                _ => Value::from(row.try_get::<String, _>(i).map_err(map)?),
                            }
                        };
                        values.push(v);
                    }
                    let row = canonical(table, &columns, values);
                    acc.add(&row);
                    line(
                        out,
                        &Value::Array(columns.iter().map(|c| row[c].clone()).collect()),
                    )?;
                }
                drop(rows);
                digests.push(acc.finish(table));
            }
            tx.rollback().await.map_err(map)?;
        }
        Database::Postgres(store) => {
            let mut tx = store.pool().begin().await.map_err(map)?;
            crate::statement::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            for (table, order) in TABLES {
                let columns = pg_columns(&mut tx, table).await?;
                let names: Vec<String> = columns.iter().map(|(c, _)| c.clone()).collect();
                line(
                    out,
                    &serde_json::json!({ "table": table, "columns": names }),
                )?;
                let (selects, kinds): (Vec<String>, Vec<PgKind>) =
                    columns.iter().map(|(c, t)| pg_select(c, t)).unzip();
                let sql = format!(
                    "SELECT {} FROM \"{table}\" ORDER BY {order}",
                    selects.join(", ")
                );
                let mut acc = Acc::default();
                let mut rows = crate::statement::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
                while let Some(row) = rows.try_next().await.map_err(map)? {
                    let mut values = Vec::with_capacity(kinds.len());
                    for (i, kind) in kinds.iter().enumerate() {
                        values.push(match kind {
                            PgKind::Int => row
                                .try_get::<Option<i64>, _>(i)
                                .map_err(map)?
                                .map_or(Value::Null, Value::from),
                            PgKind::Float => row
                                .try_get::<Option<f64>, _>(i)
                                .map_err(map)?
                                .map_or(Value::Null, Value::from),
                            PgKind::Text => row
                                .try_get::<Option<String>, _>(i)
                                .map_err(map)?
                                .map_or(Value::Null, Value::from),
                        });
                    }
                    let row = canonical(table, &names, values);
                    acc.add(&row);
                    line(
                        out,
                        &Value::Array(names.iter().map(|c| row[c].clone()).collect()),
                    )?;
                }
                drop(rows);
                digests.push(acc.finish(table));
            }
            tx.rollback().await.map_err(map)?;
        }
    }
    let counts: BTreeMap<&str, u64> = digests.iter().map(|d| (d.table.as_str(), d.rows)).collect();
    line(out, &serde_json::json!({ "end": true, "rows": counts }))?;
    out.flush().map_err(io)?;
    Ok(digests)
}

/// The digests of `db`'s tables now (what a backup of it would record).
pub async fn digests(db: &Database) -> StoreResult<Vec<TableDigest>> {
    export(db, &mut std::io::sink()).await
}

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The target has data.
    #[error(
        "the target database is not empty ({0}); restore into an empty database, or pass --force to replace its contents"
    )]
    NotEmpty(String),
    /// The file is not a complete salesai backup.
    #[error("the backup file is damaged or incomplete: {0}")]
    Damaged(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn damaged(what: impl Into<String>) -> RestoreError {
    RestoreError::Damaged(what.into())
}

/// Refuses a target with rows in any data table unless `force`; the same SQL on either
/// backend's connection.
macro_rules! check_empty {
    ($conn:expr, $force:expr) => {{
        let mut found = Vec::new();
        for t in DATA_TABLES {
            let n: i64 = crate::statement::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM \"{t}\""
            )))
            .fetch_one(&mut *$conn)
            .await
            .map_err(map)?;
            if n > 0 {
                found.push(format!("{t}: {n} rows"));
            }
        }
        if !found.is_empty() && !$force {
            return Err(RestoreError::NotEmpty(found.join(", ")));
        }
    }};
}

/// Restores a backup (uncompressed JSON lines from `input`) into `db`: migrates it, refuses a
/// non-empty target unless `force`, replaces every table's rows in one transaction. Returns the
/// rows restored per table.
pub async fn import(
    db: &Database,
    input: &mut (dyn BufRead + Send),
    force: bool,
) -> Result<Vec<(String, u64)>, RestoreError> {
    let mut lines = input.lines();
    let mut next = move || -> Result<Option<Value>, RestoreError> {
        match lines.next() {
            None => Ok(None),
            Some(Err(e)) => Err(damaged(e.to_string())),
            Some(Ok(l)) => serde_json::from_str(&l)
                .map(Some)
                .map_err(|e| damaged(format!("a line is not JSON ({e})"))),
        }
    };
    let header: Header =
        serde_json::from_value(next()?.ok_or_else(|| damaged("the file is empty"))?)
            .map_err(|_| damaged("no salesai backup header"))?;
    if header.format != FORMAT {
        return Err(damaged(format!(
            "format {:?}, this salesai reads {FORMAT}",
            header.format
        )));
    }
    let migrator = db.migrator();
    if header.schema_version > migrator.latest_known() {
        return Err(RestoreError::Store(StoreError::SchemaTooNew {
            database: header.schema_version,
            binary: migrator.latest_known(),
        }));
    }
    migrator.up().await?;
    let mut counts: Vec<(String, u64)> = Vec::new();
    match db {
        Database::Sqlite(s) => {
            let mut tx = s.pool().begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
            check_empty!(tx, force);
            for (table, _) in TABLES.iter().rev() {
                crate::statement::query(sqlx::AssertSqlSafe(format!("DELETE FROM \"{table}\"")))
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
            let mut ended = false;
            let mut section: Option<(String, Vec<String>)> = None;
            let mut batch: Vec<Vec<Value>> = Vec::new();
            while let Some(v) = next()? {
                if v.get("end").is_some() {
                    flush_sqlite(&mut tx, &section, &mut batch, &mut counts).await?;
                    verify_end(&v, &counts)?;
                    ended = true;
                    break;
                }
                if let Some(table) = v.get("table").and_then(Value::as_str) {
                    flush_sqlite(&mut tx, &section, &mut batch, &mut counts).await?;
                    section = Some((table.to_owned(), columns_of(&v)?));
                    counts.push((table.to_owned(), 0));
                    continue;
                }
                batch.push(row_of(v)?);
                if batch.len() >= 200 {
                    flush_sqlite(&mut tx, &section, &mut batch, &mut counts).await?;
                }
            }
            if !ended {
                return Err(damaged("the file ends before its last line (truncated)"));
            }
            if header.schema_version < crate::migrate::SEARCH_GRAMS {
                // Made before the gram index existed: build it from what was restored.
                crate::sqlite::backfill_search_grams(&mut tx).await?;
            }
            tx.commit().await.map_err(map)?;
        }
        Database::Postgres(p) => {
            let mut tx = p.pool().begin().await.map_err(map)?;
            check_empty!(tx, force);
            let list = TABLES
                .iter()
                .map(|(t, _)| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(", ");
            crate::statement::query(sqlx::AssertSqlSafe(format!("TRUNCATE {list}")))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            let mut ended = false;
            let mut section: Option<(String, Vec<String>, BTreeMap<String, String>)> = None;
            let mut batch: Vec<Vec<Value>> = Vec::new();
            while let Some(v) = next()? {
                if v.get("end").is_some() {
                    flush_pg(&mut tx, &section, &mut batch, &mut counts).await?;
                    verify_end(&v, &counts)?;
                    ended = true;
                    break;
                }
                if let Some(table) = v.get("table").and_then(Value::as_str) {
                    flush_pg(&mut tx, &section, &mut batch, &mut counts).await?;
                    let types: BTreeMap<String, String> =
                        pg_columns(&mut tx, table).await?.into_iter().collect();
                    section = Some((table.to_owned(), columns_of(&v)?, types));
                    counts.push((table.to_owned(), 0));
                    continue;
                }
                batch.push(row_of(v)?);
                if batch.len() >= 200 {
                    flush_pg(&mut tx, &section, &mut batch, &mut counts).await?;
                }
            }
            if !ended {
                return Err(damaged("the file ends before its last line (truncated)"));
            }
            // Identity columns continue after the restored ids.
            let identities: Vec<(String, String)> = crate::statement::query_as(
                "SELECT table_name::text, column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND is_identity = 'YES'",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
            for (table, column) in identities {
                if !TABLES.iter().any(|(t, _)| *t == table) {
                    continue;
                }
                crate::statement::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), \
                     COALESCE((SELECT MAX(\"{column}\") FROM \"{table}\"), 1), \
                     (SELECT COUNT(*) > 0 FROM \"{table}\"))"
                )))
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            }
            if header.schema_version < crate::migrate::SEARCH_GRAMS {
                crate::postgres::backfill_search_grams(&mut tx).await?;
            }
            tx.commit().await.map_err(map)?;
        }
    }
    Ok(counts)
}

fn columns_of(v: &Value) -> Result<Vec<String>, RestoreError> {
    let columns: Vec<String> = v["columns"]
        .as_array()
        .ok_or_else(|| damaged("a table header has no columns"))?
        .iter()
        .map(|c| {
            c.as_str()
                .map(str::to_owned)
                .ok_or_else(|| damaged("a column name is not text"))
        })
        .collect::<Result<_, _>>()?;
    let table = v["table"].as_str().unwrap_or_default();
    if !TABLES.iter().any(|(t, _)| *t == table) {
        return Err(damaged(format!("unknown table {table:?}")));
    }
    if columns
        .iter()
        .any(|c| !c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'))
    {
        return Err(damaged("a column name is not an identifier"));
    }
    Ok(columns)
}

fn row_of(v: Value) -> Result<Vec<Value>, RestoreError> {
    match v {
        Value::Array(values) => Ok(values),
        _ => Err(damaged("a row is not a JSON array")),
    }
}

fn verify_end(end: &Value, counts: &[(String, u64)]) -> Result<(), RestoreError> {
    for (table, n) in counts {
        let want = end["rows"][table].as_u64();
        if want != Some(*n) {
            return Err(damaged(format!(
                "table {table} has {n} rows but the file says {want:?}"
            )));
        }
    }
    Ok(())
}

async fn flush_sqlite(
    conn: &mut sqlx::SqliteConnection,
    section: &Option<(String, Vec<String>)>,
    batch: &mut Vec<Vec<Value>>,
    counts: &mut [(String, u64)],
) -> Result<(), RestoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let Some((table, columns)) = section else {
        return Err(damaged("rows before any table header"));
    };
    let target = sqlite_columns(conn, table).await?;
    let keep: Vec<usize> = (0..columns.len())
        .filter(|i| target.contains(&columns[*i]))
        .collect();
    let names = keep
        .iter()
        .map(|i| format!("\"{}\"", columns[*i]))
        .collect::<Vec<_>>()
        .join(", ");
    let one = format!("({})", vec!["?"; keep.len()].join(", "));
    let sql = format!(
        "INSERT INTO \"{table}\" ({names}) VALUES {}",
        vec![one; batch.len()].join(", ")
    );
    let mut q = crate::statement::query(sqlx::AssertSqlSafe(sql));
    for row in batch.iter() {
        if row.len() != columns.len() {
            return Err(damaged(format!(
                "a row of {table} has {} values for {} columns",
                row.len(),
                columns.len()
            )));
        }
        for i in &keep {
            q = match &row[*i] {
                Value::Null => q.bind(None::<i64>),
                v if is_json(table, &columns[*i]) => q.bind(v.to_string()),
                Value::Bool(b) => q.bind(i64::from(*b)),
                Value::Number(n) if n.is_i64() => q.bind(n.as_i64()),
                Value::Number(n) => q.bind(n.as_f64()),
                Value::String(s) => q.bind(s.clone()),
                other => q.bind(other.to_string()),
            };
        }
    }
    q.execute(&mut *conn).await.map_err(map)?;
    if let Some(c) = counts.last_mut() {
        c.1 += batch.len() as u64;
    }
    batch.clear();
    Ok(())
}

fn pg_insert_expr(n: usize, data_type: Option<&str>) -> String {
    match data_type.unwrap_or("text") {
        "timestamp with time zone" => format!("to_timestamp(${n}::bigint / 1000.0)"),
        "timestamp without time zone" => format!("to_timestamp(${n}::bigint / 1000.0)::timestamp"),
        "boolean" => format!("(${n}::bigint <> 0)"),
        "jsonb" => format!("${n}::jsonb"),
        "json" => format!("${n}::json"),
        "integer" => format!("${n}::integer"),
        "smallint" => format!("${n}::smallint"),
        "bigint" => format!("${n}::bigint"),
        "double precision" | "real" | "numeric" => format!("${n}::float8"),
        _ => format!("${n}"),
    }
}

/// `value` with every NUL character in its strings (keys included) replaced by U+FFFD.
fn without_nul(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('\0', "\u{FFFD}")),
        Value::Array(items) => Value::Array(items.iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), without_nul(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn flush_pg(
    conn: &mut sqlx::PgConnection,
    section: &Option<(String, Vec<String>, BTreeMap<String, String>)>,
    batch: &mut Vec<Vec<Value>>,
    counts: &mut [(String, u64)],
) -> Result<(), RestoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let Some((table, columns, types)) = section else {
        return Err(damaged("rows before any table header"));
    };
    let keep: Vec<usize> = (0..columns.len())
        .filter(|i| types.contains_key(&columns[*i]))
        .collect();
    let names = keep
        .iter()
        .map(|i| format!("\"{}\"", columns[*i]))
        .collect::<Vec<_>>()
        .join(", ");
    let mut n = 0;
    let mut tuples = Vec::with_capacity(batch.len());
    for _ in 0..batch.len() {
        let exprs: Vec<String> = keep
            .iter()
            .map(|i| {
                n += 1;
                pg_insert_expr(n, types.get(&columns[*i]).map(String::as_str))
            })
            .collect();
        tuples.push(format!("({})", exprs.join(", ")));
    }
    let sql = format!(
        "INSERT INTO \"{table}\" ({names}) OVERRIDING SYSTEM VALUE VALUES {}",
        tuples.join(", ")
    );
    let mut q = crate::statement::query(sqlx::AssertSqlSafe(sql));
    for row in batch.iter() {
        if row.len() != columns.len() {
            return Err(damaged(format!(
                "a row of {table} has {} values for {} columns",
                row.len(),
                columns.len()
            )));
        }
        for i in &keep {
            // PostgreSQL stores no NUL character in text or jsonb; SQLite does. A backup taken
            // on SQLite restores here with each NUL as U+FFFD instead of failing the restore.
            q = q.bind(match &row[*i] {
                Value::Null => None,
                v if is_json(table, &columns[*i]) => Some(without_nul(v).to_string()),
                Value::Bool(b) => Some(i64::from(*b).to_string()),
                Value::String(s) => Some(s.replace('\0', "\u{FFFD}")),
                other => Some(other.to_string()),
            });
        }
    }
    q.execute(&mut *conn).await.map_err(map)?;
    if let Some(c) = counts.last_mut() {
        c.1 += batch.len() as u64;
    }
    batch.clear();
    Ok(())
}

/// What `backup create` wrote, saved beside the data file as `<name>.manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The backup's name, `backup_YYYYMMDD_HHMMSS`.
    pub name: String,
    /// When it was taken.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// The schema version it was taken at.
    pub schema_version: i64,
    /// The data file's name (gzip-compressed JSON lines).
    pub data_file: String,
    /// SHA-256 of the data file.
    pub data_sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows and content digest per table.
    pub tables: Vec<TableDigest>,
    /// The recordings copied beside the data (`backup create --with-blobs`), in
    /// `<name>.blobs/<key>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<BlobEntry>,
}

/// One blob copied into a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// Its storage key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its content.
    pub sha256: String,
}

/// The folder a backup's blobs are copied into.
pub fn blobs_dir(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.blobs"))
}

/// Rewrites a backup's manifest (after its blobs were added).
pub fn save_manifest(dir: &std::path::Path, manifest: &Manifest) -> StoreResult<()> {
    std::fs::write(
        dir.join(format!("{}.manifest.json", manifest.name)),
        serde_json::to_vec_pretty(manifest).expect("manifest serialises"),
    )
    .map_err(io)
}

/// Checks every blob a manifest lists against its size and SHA-256.
fn verify_blobs(manifest_file: &std::path::Path, manifest: &Manifest) -> Result<(), VerifyError> {
    let dir = blobs_dir(
        manifest_file
            .parent()
            .unwrap_or_else(|| std::path::Path::new(".")),
        &manifest.name,
    );
    for blob in &manifest.blobs {
        let path = dir.join(&blob.key);
        let (sha, bytes) = sha256_file(&path).map_err(|e| {
            VerifyError::Manifest(format!(
                "blob {} is missing from {}: {e}",
                blob.key,
                dir.display()
            ))
        })?;
        if sha != blob.sha256 || bytes != blob.bytes {
            return Err(VerifyError::Checksum {
                file: path.display().to_string(),
                expected: blob.sha256.clone(),
                actual: sha,
            });
        }
    }
    Ok(())
}

/// The manifest path for a data file or manifest path given by a user.
pub fn manifest_path(path: &std::path::Path) -> std::path::PathBuf {
    let s = path.to_string_lossy();
    if s.ends_with(".manifest.json") {
        path.to_owned()
    } else {
        std::path::PathBuf::from(format!("{}.manifest.json", s.trim_end_matches(".jsonl.gz")))
    }
}

fn sha256_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// Takes a backup of `db` into `dir` (created when missing): `backup_YYYYMMDD_HHMMSS.jsonl.gz`
/// and its manifest, written under temporary names and renamed when complete. Keeps the newest
/// `keep` backups in `dir` and deletes older ones.
pub async fn create(db: &Database, dir: &std::path::Path, keep: usize) -> StoreResult<Manifest> {
    std::fs::create_dir_all(dir).map_err(io)?;
    let now = chrono::Utc::now();
    let mut name = format!("backup_{}", now.format("%Y%m%d_%H%M%S"));
    if dir.join(format!("{name}.jsonl.gz")).exists() {
        name = format!("{name}_{}", now.format("%3f"));
    }
    let data_file = format!("{name}.jsonl.gz");
    let partial = dir.join(format!(".{data_file}.partial"));
    let file = std::fs::File::create(&partial).map_err(io)?;
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::default(),
    );
    let result = export(db, &mut gz).await;
    let tables = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let mut inner = gz.finish().map_err(io)?;
    inner.flush().map_err(io)?;
    inner.get_ref().sync_all().map_err(io)?;
    drop(inner);
    let final_path = dir.join(&data_file);
    std::fs::rename(&partial, &final_path).map_err(io)?;
    let (data_sha256, bytes) = sha256_file(&final_path).map_err(io)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        name: name.clone(),
        created_at: now,
        backend: db.backend().as_str().into(),
        schema_version: db.migrator().current_version().await?,
        data_file,
        data_sha256,
        bytes,
        tables,
        blobs: Vec::new(),
    };
    let manifest_file = dir.join(format!("{name}.manifest.json"));
    std::fs::write(
        &manifest_file,
        serde_json::to_vec_pretty(&manifest).expect("manifest serialises"),
    )
    .map_err(io)?;
    rotate(dir, keep.max(1))?;
    Ok(manifest)
}

/// The backups in `dir`, newest first.
pub fn list(dir: &std::path::Path) -> Vec<Manifest> {
    let mut out: Vec<Manifest> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest.json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.name.cmp(&a.name)));
    out
}

fn rotate(dir: &std::path::Path, keep: usize) -> StoreResult<()> {
    for old in list(dir).into_iter().skip(keep) {
        let _ = std::fs::remove_file(dir.join(&old.data_file));
        let _ = std::fs::remove_dir_all(blobs_dir(dir, &old.name));
        std::fs::remove_file(dir.join(format!("{}.manifest.json", old.name))).map_err(io)?;
    }
    Ok(())
}

/// Why a backup did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// No manifest, or an unreadable one.
    #[error("{0}")]
    Manifest(String),
    /// The data file's checksum differs from the manifest's.
    #[error(
        "checksum mismatch: the manifest says {expected} but {file} has {actual}; the file is corrupted or was changed — use another backup"
    )]
    Checksum {
        /// The file.
        file: String,
        /// From the manifest.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// The test restore failed.
    #[error("the test restore failed: {0}")]
    Restore(#[from] RestoreError),
    /// The restored tables differ from the manifest.
    #[error("the test restore differs from the manifest: {0}")]
    Mismatch(String),
}

fn read_manifest(path: &std::path::Path) -> Result<(Manifest, std::path::PathBuf), VerifyError> {
    let manifest_file = manifest_path(path);
    let bytes = std::fs::read(&manifest_file).map_err(|e| {
        VerifyError::Manifest(format!(
            "cannot read the manifest {}: {e}; a backup is the .jsonl.gz file and its .manifest.json side by side",
            manifest_file.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
        VerifyError::Manifest(format!(
            "the manifest {} is not valid: {e}",
            manifest_file.display()
        ))
    })?;
    let data = manifest_file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .join(&manifest.data_file);
    Ok((manifest, data))
}

fn check_sum(manifest: &Manifest, data: &std::path::Path) -> Result<(), VerifyError> {
    let (actual, _) = sha256_file(data).map_err(|e| {
        VerifyError::Manifest(format!("cannot read the data file {}: {e}", data.display()))
    })?;
    if actual != manifest.data_sha256 {
        return Err(VerifyError::Checksum {
            file: data.display().to_string(),
            expected: manifest.data_sha256.clone(),
            actual,
        });
    }
    Ok(())
}

fn open_data(data: &std::path::Path) -> Result<Box<dyn BufRead + Send>, VerifyError> {
    let file = std::fs::File::open(data)
        .map_err(|e| VerifyError::Manifest(format!("cannot open {}: {e}", data.display())))?;
    Ok(Box::new(std::io::BufReader::new(
        flate2::read::GzDecoder::new(std::io::BufReader::new(file)),
    )))
}

/// Verifies a backup: the checksum, then a test restore into `scratch` (an empty database)
/// whose tables must match the manifest's row counts and digests. Returns the manifest.
pub async fn verify(path: &std::path::Path, scratch: &Database) -> Result<Manifest, VerifyError> {
    let (manifest, data) = read_manifest(path)?;
    check_sum(&manifest, &data)?;
    verify_blobs(&manifest_path(path), &manifest)?;
    let mut input = open_data(&data)?;
    import(scratch, &mut input, false).await?;
    let restored = digests(scratch).await.map_err(RestoreError::from)?;
    let mut problems = Vec::new();
    for want in &manifest.tables {
        match restored.iter().find(|d| d.table == want.table) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!(
                "{}: {} rows {} in the manifest, {} rows {} restored",
                want.table,
                want.rows,
                &want.sha256[..12],
                got.rows,
                &got.sha256[..12]
            )),
            None => problems.push(format!("{}: missing after restore", want.table)),
        }
    }
    if !problems.is_empty() {
        return Err(VerifyError::Mismatch(problems.join("; ")));
    }
    Ok(manifest)
}

/// Restores a backup into `db` after checking its checksum; `force` replaces a non-empty
/// database's contents.
pub async fn restore(
    path: &std::path::Path,
    db: &Database,
    force: bool,
) -> Result<(Manifest, Vec<(String, u64)>), VerifyError> {
    let (manifest, data) = read_manifest(path)?;
    check_sum(&manifest, &data)?;
    let mut input = open_data(&data)?;
    let counts = import(db, &mut input, force).await?;
    Ok((manifest, counts))
}
