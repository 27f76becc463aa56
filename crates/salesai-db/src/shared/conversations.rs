//! Conversations and their pipeline state, on both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesai_core::access::Reach;
use salesai_core::domain::{
    CaseNumber, Conversation, ConversationStatus, CreatedConversation, Media, NewConversation,
    StageError,
};
use salesai_core::queue::NewJob;
use salesai_core::store::{
    AgentRun, CallCursor, CallRow, CallSort, CallStats, ChunkTranscript, ConversationFilter,
    Conversations, PruneCandidate, SearchHit, StageEvent, StoreError, StoreResult, StoredAnalysis,
};
use salesai_core::transcript::{Attribution, Role, SearchGrams, Segment};
use sqlx::{QueryBuilder, Row};

use super::super::{Conn, Db, StoreImpl, db_time, insert_segments, time, write_tx};
use super::{conversation_from_row, enqueue_in, grams, not_found, notify_in, stage_event_in};
use crate::error::{Fail, R, run};

/// Every conversation query starts here.
macro_rules! conversation_select {
    () => {
        concat!("SELECT ", conversation_columns!(), " FROM conversations")
    };
}

/// A millisecond figure in an `INTEGER` column.
fn ms_i32(ms: u64) -> i32 {
    ms.min(i32::MAX as u64) as i32
}

fn opt_i64(row: &super::DbRow, column: &str) -> R<Option<i64>> {
    Ok(row.try_get::<Option<i32>, _>(column)?.map(i64::from))
}

/// A search term as a case-insensitive `LIKE` pattern (`%`, `_` and `\` taken literally);
/// `None` for an empty term.
pub(crate) fn like_pattern(term: &str) -> Option<String> {
    let term = term.trim();
    if term.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    Some(out)
}

/// Limits a conversations query to what `reach` covers.
fn push_reach(qb: &mut QueryBuilder<Db>, reach: &Reach) {
    match reach {
        Reach::All => {}
        Reach::Own(user) => {
            qb.push(" AND rep_user_id = ").push_bind(user.clone());
        }
        Reach::Teams(user) => {
            qb.push(" AND (rep_user_id = ")
                .push_bind(user.clone())
                .push(
                    " OR rep_user_id IN (SELECT u.id FROM users u JOIN team_managers m \
                     ON m.team = u.team WHERE m.user_id = ",
                )
                .push_bind(user.clone())
                .push("))");
        }
    }
}

/// How a search looks into transcripts and summaries.
#[derive(Debug, Clone, PartialEq)]
enum TranscriptMatch {
    /// Each candidate call's own lines, newest call first: fast when the term is common (the
    /// page fills within the first calls), and the way for short terms no index serves.
    Scan,
    /// The calls an index names: each entry a subquery (`SELECT conversation_id …`), the value
    /// bound after it and the SQL that follows. Fast when the term is rare.
    Indexed(Vec<(&'static str, String, &'static str)>),
}

/// Matches from an index at or above which a term counts as common.
const COMMON_MATCHES: i64 = 2_000;

/// Chooses how a search term looks into transcripts and summaries. Terms of three or more
/// characters go to the trigram indexes, terms of one or two Chinese, Japanese or Korean
/// characters to the gram index (migration 0013); a probe of at most [`COMMON_MATCHES`] index
/// entries then tells rare terms (answered from the index) from common ones (answered by
/// scanning the newest calls, which stops once the page is full). Other short terms, and no
/// search, `Scan`.
async fn transcript_match(pool: &super::super::Pool, search: Option<&str>) -> R<TranscriptMatch> {
    let Some(term) = search else {
        return Ok(TranscriptMatch::Scan);
    };
    let candidates = if let Some(pattern) = super::super::indexed_pattern(term) {
        vec![
            (
                super::super::TRANSCRIPT_INDEX_SUBQUERY,
                pattern.clone(),
                super::super::TRANSCRIPT_INDEX_SUFFIX,
            ),
            (
                super::super::SUMMARY_INDEX_SUBQUERY,
                pattern,
                super::super::TRANSCRIPT_INDEX_SUFFIX,
            ),
        ]
    } else if let Some(gram) = salesai_core::transcript::search_gram(term) {
        vec![(
            super::super::GRAMS_INDEX_SUBQUERY,
            super::super::gram_value(&gram),
            super::super::GRAMS_INDEX_SUFFIX,
        )]
    } else {
        return Ok(TranscriptMatch::Scan);
    };
    let mut found = 0;
    for (subquery, value, suffix) in &candidates {
        let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM (");
        qb.push(*subquery)
            .push_bind(value.clone())
            .push(*suffix)
            .push(" LIMIT ")
            .push_bind(COMMON_MATCHES)
            .push(") probe");
        let n: i64 = qb.build_query_scalar().fetch_one(pool).await?;
        found += n;
    }
    Ok(if found < COMMON_MATCHES {
        TranscriptMatch::Indexed(candidates)
    } else {
        TranscriptMatch::Scan
    })
}

/// The `WHERE` conditions, order and page of a conversations query (`WHERE TRUE` written).
fn push_filter(
    qb: &mut QueryBuilder<Db>,
    filter: &ConversationFilter,
    transcript: &TranscriptMatch,
) {
    if let Some(reach) = &filter.reach {
        push_reach(qb, reach);
    }
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(line) = &filter.product_line {
        qb.push(" AND product_line = ").push_bind(line.clone());
    }
    if let Some(kind) = filter.conversation_type {
        qb.push(" AND conversation_type = ")
            .push_bind(kind.as_str());
    }
    if let Some(rep) = &filter.rep_user_id {
        qb.push(" AND rep_user_id = ").push_bind(rep.clone());
    }
    if let Some(team) = &filter.team {
        qb.push(" AND rep_user_id IN (SELECT id FROM users WHERE team = ")
            .push_bind(team.clone())
            .push(")");
    }
    if let Some(customer) = &filter.customer_number {
        qb.push(" AND opportunity_id IN (SELECT id FROM opportunities WHERE customer_number = ")
            .push_bind(customer.clone())
            .push(")");
    }
    if filter.qualification.is_some() || filter.score_min.is_some() || filter.score_max.is_some() {
        // Correlated, so a list walking the newest calls checks each one's analysis by its key
        // and stops when the page is full (an IN list would read every matching analysis first).
        qb.push(" AND EXISTS (SELECT 1 FROM analyses a WHERE a.conversation_id = conversations.id");
        if let Some(band) = &filter.qualification {
            qb.push(" AND qualification = ").push_bind(band.clone());
        }
        if let Some(min) = filter.score_min {
            qb.push(" AND overall_score >= ").push_bind(i32::from(min));
        }
        if let Some(max) = filter.score_max {
            qb.push(" AND overall_score <= ").push_bind(i32::from(max));
        }
        qb.push(")");
    }
    // A period is the calls held in it: by the call's date (the upload time when none was
    // given), the same column the list is ordered by.
    if let Some(from) = filter.from {
        qb.push(" AND call_at >= ").push_bind(db_time(from));
    }
    if let Some(to) = filter.to {
        qb.push(" AND call_at < ").push_bind(db_time(to));
    }
    if let Some(pattern) = filter.search.as_deref().and_then(like_pattern) {
        qb.push(
            " AND (opportunity_id IN (SELECT id FROM opportunities WHERE lower(company_name) LIKE ",
        )
        .push_bind(pattern.clone())
        .push(" ESCAPE '\\' OR lower(customer_number) LIKE ")
        .push_bind(pattern.clone())
        .push(" ESCAPE '\\') OR lower(title) LIKE ")
        .push_bind(pattern.clone())
        .push(" ESCAPE '\\' OR ");
        // Edited meeting notes: few, a plain LIKE.
        qb.push("id IN (SELECT conversation_id FROM meeting_notes WHERE lower(markdown) LIKE ")
            .push_bind(pattern.clone())
            .push(" ESCAPE '\\') OR ");
        match transcript {
            TranscriptMatch::Scan => {
                qb.push("EXISTS (SELECT 1 FROM transcript_segments s WHERE s.conversation_id = conversations.id AND ")
                    .push(super::super::LINE_MATCHES)
                    .push_bind(pattern.clone())
                    .push(" ESCAPE '\\') OR EXISTS (SELECT 1 FROM agent_outputs o WHERE o.conversation_id = conversations.id AND o.agent = 'summary' AND ")
                    .push(super::super::SUMMARY_MATCHES)
                    .push_bind(pattern)
                    .push(" ESCAPE '\\')");
            }
            TranscriptMatch::Indexed(candidates) => {
                for (subquery, value, suffix) in candidates {
                    qb.push("id IN (")
                        .push(*subquery)
                        .push_bind(value.clone())
                        .push(*suffix)
                        .push(") OR ");
                }
                qb.push("FALSE");
            }
        }
        qb.push(")");
    }
    // The order and, for keyset paging, "after the cursor" in that order: by the call's date
    // (`call_at`: the date given at upload, else the upload time). Within a score (and for
    // newest/oldest) the call's date and then the id (a UUIDv7: upload order) break ties, so
    // every call has one place.
    let (newer_first, score) = match filter.sort {
        CallSort::Newest => (true, None),
        CallSort::Oldest => (false, None),
        CallSort::ScoreHigh => (true, Some("DESC")),
        CallSort::ScoreLow => (true, Some("ASC")),
    };
    if score.is_some() {
        // Sorted by score: analysed calls only.
        qb.push(" AND ").push(SCORE_OF).push(" IS NOT NULL");
    }
    if let Some(after) = &filter.after {
        let at = db_time(after.call_at);
        let (time_op, id_op) = if newer_first { ("<", "<") } else { (">", ">") };
        // First a plain bound on the order's leading column, which the index serves as where
        // to start; the exact "after" below is an OR that neither planner can start from, so
        // without it a deep page walks every row before the cursor (99,000 at 99 % down).
        match (score, after.score) {
            (Some(direction), Some(last)) => {
                qb.push(" AND ")
                    .push(SCORE_OF)
                    .push(if direction == "DESC" { " <= " } else { " >= " })
                    .push_bind(i32::from(last));
            }
            _ => {
                qb.push(" AND call_at ")
                    .push(if newer_first { "<= " } else { ">= " })
                    .push_bind(at);
            }
        }
        qb.push(" AND (");
        if let (Some(direction), Some(last)) = (score, after.score) {
            let beyond = if direction == "DESC" { " < " } else { " > " };
            qb.push(SCORE_OF)
                .push(beyond)
                .push_bind(i32::from(last))
                .push(" OR (")
                .push(SCORE_OF)
                .push(" = ")
                .push_bind(i32::from(last))
                .push(" AND (");
        }
        qb.push("call_at ")
            .push(time_op)
            .push(" ")
            .push_bind(at)
            .push(" OR (call_at = ")
            .push_bind(at)
            .push(" AND id ")
            .push(id_op)
            .push(" ")
            .push_bind(after.id.clone())
            .push("))");
        if score.is_some() && after.score.is_some() {
            qb.push("))");
        }
    }
    qb.push(" ORDER BY ");
    if let Some(direction) = score {
        qb.push(SCORE_OF).push(" ").push(direction).push(", ");
    }
    qb.push(if newer_first {
        "call_at DESC, id DESC"
    } else {
        "call_at ASC, id ASC"
    });
    qb.push(" LIMIT ")
        .push_bind(i64::from(filter.limit.clamp(1, 500)));
    if filter.after.is_none() && filter.offset > 0 {
        qb.push(" OFFSET ").push_bind(i64::from(filter.offset));
    }
}

/// A provider's JSON as it can be stored: without NULs (a model or a speech-to-text server
/// that answers one would otherwise fail the stage on PostgreSQL on every retry).
fn storable(value: &serde_json::Value) -> serde_json::Value {
    salesai_core::intake::without_nul(value.clone())
}

/// The filter with its search term as the database can take it: control characters dropped
/// (a NUL, which PostgreSQL's text cannot hold, failed the whole list), and no search when
/// nothing is left.
fn searchable(filter: &ConversationFilter) -> ConversationFilter {
    let search = filter.search.as_deref().and_then(|term| {
        let clean: String = term.chars().filter(|c| !c.is_control()).collect();
        let clean = clean.trim();
        (!clean.is_empty()).then(|| clean.to_owned())
    });
    ConversationFilter {
        search,
        ..filter.clone()
    }
}

/// An `offset` page as a keyset page: the call just before the page is found by a query that
/// reads only the order's columns (from the index), and the page is then read after it. An
/// `OFFSET` on the list itself computes every skipped call's columns (customer, duration,
/// score…): 99,000 calls' worth at 99 % down. `None`: the list ends before the offset.
async fn by_key(
    pool: &super::super::Pool,
    filter: &ConversationFilter,
    transcript: &TranscriptMatch,
) -> R<Option<ConversationFilter>> {
    if filter.after.is_some() || filter.offset == 0 {
        return Ok(Some(filter.clone()));
    }
    let by_score = matches!(filter.sort, CallSort::ScoreHigh | CallSort::ScoreLow);
    let probe = ConversationFilter {
        limit: 1,
        offset: filter.offset - 1,
        ..filter.clone()
    };
    let mut qb = QueryBuilder::<Db>::new("SELECT call_at, id, ");
    qb.push(if by_score {
        SCORE_OF
    } else {
        "CAST(NULL AS INTEGER)"
    })
    .push(" AS score FROM conversations WHERE TRUE");
    push_filter(&mut qb, &probe, transcript);
    let Some(row) = qb.build().fetch_optional(pool).await? else {
        return Ok(None);
    };
    Ok(Some(ConversationFilter {
        offset: 0,
        after: Some(CallCursor {
            call_at: time(&row, "call_at")?,
            id: row.try_get("id")?,
            score: row
                .try_get::<Option<i32>, _>("score")?
                .map(|s| s.clamp(0, 100) as u8),
        }),
        ..filter.clone()
    }))
}

/// A call's overall score, copied beside the call from its analysis (migration 0012), which a
/// list sorted by score walks in one index (`conversations_score_low_idx`, or
/// `conversations_score_high_idx` backwards) and stops when the page is full.
const SCORE_OF: &str = "analysis_score";

/// Deletes a conversation's agent outputs and analysis inside the caller's transaction.
async fn clear_analysis_in(conn: &mut Conn, id: &str) -> R<()> {
    for sql in [
        sql!("DELETE FROM agent_outputs WHERE conversation_id = $1"),
        sql!("DELETE FROM analyses WHERE conversation_id = $1"),
        sql!("UPDATE conversations SET analysis_score = NULL WHERE id = $1"),
        sql!("DELETE FROM search_grams WHERE conversation_id = $1 AND source = 'summary'"),
    ] {
        crate::statement::query(sql)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Moves a conversation to `status` with its error cleared, optionally deleting its analysis,
/// and enqueues `jobs` for it, with the stage event and the notification, in one transaction.
async fn move_on(
    store: &StoreImpl,
    id: &str,
    status: ConversationStatus,
    jobs: Vec<NewJob>,
    clear_analysis: bool,
) -> R<Vec<i64>> {
    let mut tx = write_tx(&store.pool).await?;
    let changed = crate::statement::query(sql!(
        "UPDATE conversations SET status = $1, error_stage = NULL, error_code = NULL, error_message = NULL, \
         error_retryable = NULL, updated_at = now() WHERE id = $2"
    ))
    .bind(status.as_str())
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(not_found(format!("conversation {id}")).into());
    }
    if clear_analysis {
        clear_analysis_in(&mut tx, id).await?;
    }
    stage_event_in(&mut tx, id, status).await?;
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        ids.push(enqueue_in(&mut tx, &job.for_conversation(id)).await?.id);
    }
    notify_in(&mut tx, id).await?;
    tx.commit().await?;
    Ok(ids)
}

/// The conversation a one-key `sql` finds, if any.
async fn one_conversation(
    store: &StoreImpl,
    sql: &'static str,
    key: &str,
) -> R<Option<Conversation>> {
    let row = crate::statement::query(sql)
        .bind(key)
        .fetch_optional(&store.pool)
        .await?;
    row.as_ref().map(conversation_from_row).transpose()
}

/// Why one pass of creating a conversation did not finish.
enum CreateError {
    /// Another upload with the same idempotency key won the race.
    DuplicateKey,
    Fail(Fail),
}

impl<E: Into<Fail>> From<E> for CreateError {
    fn from(err: E) -> Self {
        CreateError::Fail(err.into())
    }
}

/// One pass of `create_conversation`, in one transaction.
async fn try_create_conversation(
    store: &StoreImpl,
    new: &NewConversation,
) -> Result<CreatedConversation, CreateError> {
    let mut tx = write_tx(&store.pool).await?;
    if let Some(key) = &new.idempotency_key {
        let existing = crate::statement::query(sql!(
            "SELECT c.id, c.case_number, c.opportunity_id, \
             (SELECT MIN(j.id) FROM jobs j WHERE j.conversation_id = c.id) AS job_id \
             FROM conversations c WHERE c.idempotency_key = $1"
        ))
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(CreatedConversation {
                id: row.try_get("id")?,
                case_number: CaseNumber::parse(&row.try_get::<String, _>("case_number")?)?,
                opportunity_id: row.try_get("opportunity_id")?,
                job_id: row.try_get::<Option<i64>, _>("job_id")?.unwrap_or(0),
                created: false,
            });
        }
    }
    let opportunity_id: String = crate::statement::query_scalar(sql!(
        "INSERT INTO opportunities (id, customer_number, company_name, product_line, status, \
         status_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'new', now(), now(), now()) \
         ON CONFLICT (customer_number) DO UPDATE SET updated_at = excluded.updated_at RETURNING id"
    ))
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(new.customer_number.as_str())
    .bind(&new.customer_name)
    .bind(&new.product_line)
    .fetch_one(&mut *tx)
    .await?;
    // The case number: the next value of the (period, prefix) sequence, in this transaction.
    let sequence: i32 = crate::statement::query_scalar(sql!(
        "INSERT INTO case_sequences (period, prefix, last_value) VALUES ($1, $2, 1) \
         ON CONFLICT (period, prefix) DO UPDATE SET last_value = case_sequences.last_value + 1 \
         RETURNING last_value"
    ))
    .bind(new.case_period.as_str())
    .bind(new.case_prefix.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let case_number = CaseNumber::new(&new.case_period, &new.case_prefix, sequence as u64);
    let id = uuid::Uuid::now_v7().to_string();
    crate::statement::query(sql!(
        "INSERT INTO conversations (id, case_number, opportunity_id, product_line, conversation_type, \
         title, status, blob_key, conversation_date, rep_user_id, metadata, idempotency_key, \
         slack_channel_id, slack_thread_ts, media_kind, media_format, media_bytes, file_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, now(), now())"
    ))
    .bind(&id)
    .bind(case_number.as_str())
    .bind(&opportunity_id)
    .bind(&new.product_line)
    .bind(new.conversation_type.as_str())
    .bind(&new.title)
    .bind(&new.blob_key)
    .bind(new.conversation_date.map(db_time))
    .bind(&new.rep_user_id)
    .bind(&new.metadata)
    .bind(&new.idempotency_key)
    .bind(new.slack.as_ref().map(|s| s.channel_id.clone()))
    .bind(new.slack.as_ref().and_then(|s| s.thread_ts.clone()))
    .bind(new.media.kind.map(|k| k.as_str()))
    .bind(&new.media.format)
    .bind(new.media.bytes.map(|b| b.min(i64::MAX as u64) as i64))
    .bind(&new.media.file_name)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            CreateError::DuplicateKey
        } else {
            e.into()
        }
    })?;
    stage_event_in(&mut tx, &id, ConversationStatus::Pending).await?;
    notify_in(&mut tx, &id).await?;
    let mut job = new.first_job.clone();
    job.conversation_id = Some(id.clone());
    let enqueued = enqueue_in(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(CreatedConversation {
        id,
        case_number,
        opportunity_id,
        job_id: enqueued.id,
        created: true,
    })
}

#[async_trait]
impl Conversations for StoreImpl {
    async fn create_conversation(&self, new: NewConversation) -> StoreResult<CreatedConversation> {
        // Two uploads with the same idempotency key may race past the lookup; the loser hits
        // the unique index, rolls back, and on its second pass finds the winner's row.
        for _ in 0..2 {
            match try_create_conversation(self, &new).await {
                Ok(created) => return Ok(created),
                Err(CreateError::DuplicateKey) => continue,
                Err(CreateError::Fail(f)) => return Err(f.0),
            }
        }
        Err(StoreError::Other(
            "idempotency key conflict did not resolve".into(),
        ))
    }

    async fn get_conversation(&self, id: &str) -> StoreResult<Option<Conversation>> {
        let sql = sql!(concat!(conversation_select!(), " WHERE id = $1"));
        run(one_conversation(self, sql, id)).await
    }

    async fn find_conversation_by_case(
        &self,
        case_number: &str,
    ) -> StoreResult<Option<Conversation>> {
        let sql = sql!(concat!(conversation_select!(), " WHERE case_number = $1"));
        run(one_conversation(self, sql, case_number)).await
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> StoreResult<Vec<Conversation>> {
        run(async {
            let filter = &searchable(filter);
            let transcript = transcript_match(&self.pool, filter.search.as_deref()).await?;
            let Some(filter) = &by_key(&self.pool, filter, &transcript).await? else {
                return Ok(Vec::new());
            };
            let mut qb =
                QueryBuilder::<Db>::new(concat!("SELECT ", conversation_columns!(), " FROM "));
            qb.push("conversations WHERE TRUE");
            push_filter(&mut qb, filter, &transcript);
            let rows = qb.build().fetch_all(&self.pool).await?;
            rows.iter().map(conversation_from_row).collect()
        })
        .await
    }

    async fn list_calls(&self, filter: &ConversationFilter) -> StoreResult<Vec<CallRow>> {
        run(async {
            let filter = &searchable(filter);
            let mut qb = QueryBuilder::<Db>::new(concat!(
                "SELECT ",
                conversation_columns!(),
                ", (SELECT overall_score FROM analyses a WHERE a.conversation_id = conversations.id) AS score, \
                 (SELECT qualification FROM analyses a WHERE a.conversation_id = conversations.id) AS qualification, \
                 (SELECT display_name FROM users u WHERE u.id = conversations.rep_user_id) AS rep_name, \
                 (SELECT end_ms FROM transcript_segments s WHERE s.conversation_id = conversations.id \
                  ORDER BY seq DESC LIMIT 1) AS last_end_ms, "
            ));
            qb.push(super::super::CRM_STAGE)
                .push(" FROM conversations WHERE TRUE");
            let transcript = transcript_match(&self.pool, filter.search.as_deref()).await?;
            let Some(filter) = &by_key(&self.pool, filter, &transcript).await? else {
                return Ok(Vec::new());
            };
            push_filter(&mut qb, filter, &transcript);
            let rows = qb.build().fetch_all(&self.pool).await?;
            let mut calls = Vec::with_capacity(rows.len());
            for row in &rows {
                calls.push(CallRow {
                    conversation: conversation_from_row(row)?,
                    score: row
                        .try_get::<Option<i32>, _>("score")?
                        .map(|s| s.clamp(0, 100) as u8),
                    qualification: row.try_get("qualification")?,
                    stage: row.try_get("stage")?,
                    rep_name: row
                        .try_get::<Option<String>, _>("rep_name")?
                        .filter(|n| !n.is_empty()),
                    duration_ms: opt_i64(row, "last_end_ms")?,
                    hit: None,
                });
            }
            // With a search, the first matching line of each call on the page, in one query.
            if let Some(pattern) = filter.search.as_deref().and_then(like_pattern)
                && !calls.is_empty()
            {
                let mut qb = QueryBuilder::<Db>::new(
                    "SELECT conversation_id, seq, start_ms, speaker, text FROM transcript_segments s \
                     WHERE ",
                );
                qb.push(super::super::LINE_MATCHES);
                qb.push_bind(pattern).push(" ESCAPE '\\' AND conversation_id IN (");
                let mut ids = qb.separated(", ");
                for call in &calls {
                    ids.push_bind(call.conversation.id.clone());
                }
                qb.push(") ORDER BY conversation_id, seq");
                for r in qb.build().fetch_all(&self.pool).await? {
                    let id: String = r.try_get("conversation_id")?;
                    if let Some(call) = calls
                        .iter_mut()
                        .find(|c| c.conversation.id == id && c.hit.is_none())
                    {
                        call.hit = Some(SearchHit {
                            seq: i64::from(r.try_get::<i32, _>("seq")?),
                            start_ms: i64::from(r.try_get::<i32, _>("start_ms")?),
                            speaker: r.try_get("speaker")?,
                            text: r.try_get("text")?,
                        });
                    }
                }
            }
            Ok(calls)
        })
        .await
    }

    async fn call_stats(&self, reach: &Reach, since: DateTime<Utc>) -> StoreResult<CallStats> {
        run(async {
            // AVG skips the calls without an analysis (their subquery is NULL).
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT COUNT(*) AS total, \
                 COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS completed, \
                 COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
                 AVG((SELECT CAST(a.overall_score AS REAL) FROM analyses a \
                  WHERE a.conversation_id = conversations.id)) AS average \
                 FROM conversations WHERE TRUE",
            );
            push_reach(&mut qb, reach);
            // The calls held since then, by the call's date: a call uploaded today that was held
            // three weeks ago is not one of this week's.
            qb.push(" AND call_at >= ").push_bind(db_time(since));
            let row = qb.build().fetch_one(&self.pool).await?;
            let count =
                |name: &str| -> R<i64> { Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0)) };
            let (total, completed, failed) =
                (count("total")?, count("completed")?, count("failed")?);
            Ok(CallStats {
                total,
                completed,
                failed,
                in_progress: total - completed - failed,
                average_score: row.try_get::<Option<f64>, _>("average")?,
            })
        })
        .await
    }

    async fn set_conversation_status(
        &self,
        id: &str,
        status: ConversationStatus,
        error: Option<&StageError>,
    ) -> StoreResult<()> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let changed = crate::statement::query(sql!(
                "UPDATE conversations SET status = $1, error_stage = $2, error_code = $3, error_message = $4, \
                 error_retryable = $5, updated_at = now() WHERE id = $6"
            ))
            .bind(status.as_str())
            .bind(error.map(|e| e.stage.as_str()))
            .bind(error.map(|e| e.code.clone()))
            .bind(error.map(|e| e.message.clone()))
            .bind(error.map(|e| e.retryable))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(not_found(format!("conversation {id}")).into());
            }
            stage_event_in(&mut tx, id, status).await?;
            notify_in(&mut tx, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn restart_conversation(
        &self,
        id: &str,
        status: ConversationStatus,
        job: NewJob,
        clear_analysis: bool,
    ) -> StoreResult<i64> {
        let ids = run(move_on(self, id, status, vec![job], clear_analysis)).await?;
        Ok(ids.first().copied().unwrap_or_default())
    }

    async fn advance(
        &self,
        id: &str,
        status: ConversationStatus,
        next: Vec<NewJob>,
    ) -> StoreResult<Vec<i64>> {
        run(move_on(self, id, status, next, false)).await
    }

    async fn stage_events(&self, id: &str) -> StoreResult<Vec<StageEvent>> {
        run(async {
            let rows = crate::statement::query(sql!(
                "SELECT status, at FROM conversation_stage_events WHERE conversation_id = $1 ORDER BY id"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(StageEvent {
                        status: ConversationStatus::parse(&r.try_get::<String, _>("status")?)?,
                        at: time(r, "at")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn save_transcript(&self, id: &str, segments: &[Segment]) -> StoreResult<()> {
        run(async {
            // A NUL (from an uploaded file or a provider) cannot be stored by PostgreSQL and
            // would fail the stage on every retry; it goes on both backends alike.
            let cleaned: Vec<Segment>;
            let segments = if segments.iter().any(|s| {
                s.text.contains('\0') || s.speaker.as_deref().is_some_and(|p| p.contains('\0'))
            }) {
                cleaned = segments
                    .iter()
                    .map(|s| Segment {
                        text: s.text.replace('\0', ""),
                        speaker: s.speaker.as_ref().map(|p| p.replace('\0', "")),
                        ..s.clone()
                    })
                    .collect();
                &cleaned[..]
            } else {
                segments
            };
            let mut tx = write_tx(&self.pool).await?;
            crate::statement::query(sql!(
                "DELETE FROM transcript_segments WHERE conversation_id = $1"
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if !segments.is_empty() {
                insert_segments(&mut tx, id, segments).await?;
            }
            let mut grams = SearchGrams::default();
            for segment in segments {
                grams.add(&segment.text);
            }
            grams::put_in(&mut tx, id, grams::TRANSCRIPT, &grams).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn set_media_format(&self, id: &str, format: &str) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "UPDATE conversations SET media_format = $1 WHERE id = $2"
            ))
            .bind(format)
            .bind(id)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn get_transcript(&self, id: &str) -> StoreResult<Vec<Segment>> {
        run(async {
            let rows = crate::statement::query(sql!(
                "SELECT speaker, start_ms, end_ms, text, role, attribution, confidence FROM transcript_segments WHERE conversation_id = $1 ORDER BY seq"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Segment {
                        speaker: r.try_get("speaker")?,
                        start_ms: r.try_get::<i32, _>("start_ms")?.max(0) as u64,
                        end_ms: r.try_get::<i32, _>("end_ms")?.max(0) as u64,
                        text: r.try_get("text")?, role: r
                            .try_get::<Option<String>, _>("role")?
                            .as_deref()
                            .and_then(Role::parse),
                        attribution: r
                            .try_get::<Option<String>, _>("attribution")?
                            .as_deref()
                            .and_then(Attribution::parse),
                        confidence: r
                            .try_get::<Option<i32>, _>("confidence")?
                            .map(|c| c.clamp(0, 100) as u8), })
                })
                .collect()
        })
        .await
    }

    async fn save_chunk_transcript(&self, id: &str, chunk: &ChunkTranscript) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO transcript_chunks (conversation_id, chunk_index, channel, start_ms, end_ms, provider, model, segments, latency_ms, created_at) \
                 VALUES ($1, $2, $9, $3, $4, $5, $6, $7, $8, now()) ON CONFLICT (conversation_id, channel, chunk_index) DO UPDATE SET \
                 start_ms = excluded.start_ms, end_ms = excluded.end_ms, provider = excluded.provider, model = excluded.model, \
                 segments = excluded.segments, latency_ms = excluded.latency_ms, created_at = excluded.created_at"
            ))
            .bind(id)
            .bind(chunk.index as i32)
            .bind(ms_i32(chunk.start_ms))
            .bind(ms_i32(chunk.end_ms))
            .bind(&chunk.provider)
            .bind(&chunk.model)
            .bind(salesai_core::intake::without_nul(serde_json::to_value(&chunk.segments)?))
            .bind(chunk.latency_ms.map(|v| v as i32))
            .bind(chunk.channel as i32)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn get_chunk_transcripts(&self, id: &str) -> StoreResult<Vec<ChunkTranscript>> {
        run(async {
            let rows = crate::statement::query(sql!(
                "SELECT channel, chunk_index, start_ms, end_ms, provider, model, segments, latency_ms \
                 FROM transcript_chunks WHERE conversation_id = $1 ORDER BY channel, chunk_index"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(ChunkTranscript {
                        channel: r.try_get::<i32, _>("channel")?.max(0) as u32,
                        index: r.try_get::<i32, _>("chunk_index")?.max(0) as u32,
                        start_ms: r.try_get::<i32, _>("start_ms")?.max(0) as u64,
                        end_ms: r.try_get::<i32, _>("end_ms")?.max(0) as u64,
                        provider: r
                            .try_get::<Option<String>, _>("provider")?
                            .unwrap_or_default(),
                        model: r.try_get("model")?,
                        segments: serde_json::from_value(r.try_get("segments")?)?,
                        latency_ms: opt_i64(r, "latency_ms")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn save_agent_output(&self, id: &str, run_: &AgentRun) -> StoreResult<()> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            crate::statement::query(sql!(
                "INSERT INTO agent_outputs (conversation_id, agent, engine, model, output, prompt_tokens, completion_tokens, latency_ms, fallback_reason, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) ON CONFLICT (conversation_id, agent) DO UPDATE SET engine = excluded.engine, \
                 model = excluded.model, output = excluded.output, prompt_tokens = excluded.prompt_tokens, \
                 completion_tokens = excluded.completion_tokens, latency_ms = excluded.latency_ms, \
                 fallback_reason = excluded.fallback_reason, created_at = excluded.created_at"
            ))
            .bind(id)
            .bind(&run_.agent)
            .bind(&run_.engine)
            .bind(&run_.model)
            .bind(storable(&run_.output))
            .bind(run_.prompt_tokens.map(|v| v as i32))
            .bind(run_.completion_tokens.map(|v| v as i32))
            .bind(run_.latency_ms.map(|v| v as i32))
            .bind(&run_.fallback)
            .execute(&mut *tx)
            .await?;
            // The summary's meeting notes are searched too: their grams change with them.
            if run_.agent == grams::SUMMARY {
                let mut summary = SearchGrams::default();
                summary.add(grams::summary_text(&run_.output));
                grams::put_in(&mut tx, id, grams::SUMMARY, &summary).await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_agent_outputs(&self, id: &str) -> StoreResult<Vec<AgentRun>> {
        run(async {
            let rows = crate::statement::query(sql!(
                "SELECT agent, engine, model, output, prompt_tokens, completion_tokens, latency_ms, \
                 fallback_reason FROM agent_outputs WHERE conversation_id = $1 ORDER BY created_at, agent"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AgentRun {
                        agent: r.try_get("agent")?,
                        engine: r.try_get("engine")?,
                        model: r.try_get("model")?,
                        output: r.try_get("output")?,
                        prompt_tokens: opt_i64(r, "prompt_tokens")?,
                        completion_tokens: opt_i64(r, "completion_tokens")?,
                        latency_ms: opt_i64(r, "latency_ms")?,
                        fallback: r.try_get("fallback_reason")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn clear_analysis(&self, id: &str) -> StoreResult<()> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            clear_analysis_in(&mut tx, id).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn complete_analysis(&self, id: &str, analysis: &StoredAnalysis) -> StoreResult<()> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            crate::statement::query(sql!(
                "INSERT INTO analyses (conversation_id, engine, overall_score, qualification, pain_score, decision_score, \
                 champion_score, metrics_score, result, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) \
                 ON CONFLICT (conversation_id) DO UPDATE SET engine = excluded.engine, overall_score = excluded.overall_score, \
                 qualification = excluded.qualification, pain_score = excluded.pain_score, decision_score = excluded.decision_score, \
                 champion_score = excluded.champion_score, metrics_score = excluded.metrics_score, result = excluded.result, \
                 created_at = excluded.created_at"
            ))
            .bind(id)
            .bind(&analysis.engine)
            .bind(i32::from(analysis.overall_score.value()))
            .bind(&analysis.qualification)
            .bind(i32::from(analysis.pain_score.value()))
            .bind(i32::from(analysis.decision_score.value()))
            .bind(i32::from(analysis.champion_score.value()))
            .bind(i32::from(analysis.metrics_score.value()))
            .bind(storable(&analysis.result))
            .execute(&mut *tx)
            .await?;
            crate::statement::query(sql!(
                "UPDATE conversations SET status = 'completed', error_stage = NULL, error_code = NULL, error_message = NULL, \
                 error_retryable = NULL, analysis_score = $2, updated_at = now() WHERE id = $1"
            ))
            .bind(id)
            .bind(i32::from(analysis.overall_score.value()))
            .execute(&mut *tx)
            .await?;
            stage_event_in(&mut tx, id, ConversationStatus::Completed).await?;
            notify_in(&mut tx, id).await?;
            crate::statement::query(sql!(
                "UPDATE opportunities SET latest_score = $1, updated_at = now() \
                 WHERE id = (SELECT opportunity_id FROM conversations WHERE id = $2)"
            ))
            .bind(i32::from(analysis.overall_score.value()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_analysis(&self, id: &str) -> StoreResult<Option<StoredAnalysis>> {
        run(async {
            let row = crate::statement::query(sql!(
                "SELECT engine, overall_score, qualification, pain_score, decision_score, champion_score, \
                 metrics_score, result FROM analyses WHERE conversation_id = $1"
            ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
            let Some(r) = row else { return Ok(None) };
            let score = |name: &str| -> R<salesai_core::domain::Score> {
                let value = r.try_get::<Option<i32>, _>(name)?.unwrap_or(0);
                Ok(salesai_core::domain::Score::new(i64::from(value))?)
            };
            Ok(Some(StoredAnalysis {
                engine: r.try_get("engine")?,
                overall_score: score("overall_score")?,
                qualification: r.try_get("qualification")?,
                pain_score: score("pain_score")?,
                decision_score: score("decision_score")?,
                champion_score: score("champion_score")?,
                metrics_score: score("metrics_score")?,
                result: r.try_get("result")?,
            }))
        })
        .await
    }

    async fn prune_candidates(
        &self,
        before: DateTime<Utc>,
        with_audio_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<PruneCandidate>> {
        run(async {
            let rows = crate::statement::query(sql!(
                "SELECT id, case_number, blob_key FROM conversations WHERE status = 'completed' AND NOT protected \
                 AND created_at < $1 AND (NOT $2 OR blob_key IS NOT NULL) ORDER BY created_at, id LIMIT $3"
            ))
            .bind(db_time(before))
            .bind(with_audio_only)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = r.try_get("id")?;
                let chunks = crate::statement::query(sql!(
                    "SELECT channel, chunk_index FROM transcript_chunks WHERE conversation_id = $1 AND provider <> 'silence'"
                ))
                .bind(&id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|c| {
                    Ok((
                        c.try_get::<i32, _>("channel")?.max(0) as u32,
                        c.try_get::<i32, _>("chunk_index")?.max(0) as u32,
                    ))
                })
                .collect::<R<Vec<_>>>()?;
                out.push(PruneCandidate {
                    id,
                    case_number: r.try_get("case_number")?,
                    blob_key: r.try_get("blob_key")?,
                    chunks,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn delete_conversation(&self, id: &str) -> StoreResult<bool> {
        run(async {
            let changed = crate::statement::query(sql!("DELETE FROM conversations WHERE id = $1"))
                .bind(id)
                .execute(self.pool.writes())
                .await?
                .rows_affected();
            Ok(changed == 1)
        })
        .await
    }

    async fn forget_audio(&self, id: &str) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "UPDATE conversations SET blob_key = NULL, updated_at = now() WHERE id = $1"
            ))
            .bind(id)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn attach_media(
        &self,
        id: &str,
        blob_key: &str,
        media: &Media,
        next: NewJob,
    ) -> StoreResult<i64> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let changed = crate::statement::query(sql!(
                "UPDATE conversations SET blob_key = $1, media_kind = $2, media_format = $3, media_bytes = $4, \
                 file_name = COALESCE($5, file_name), updated_at = now() WHERE id = $6"
            ))
            .bind(blob_key)
            .bind(media.kind.map(|k| k.as_str()))
            .bind(&media.format)
            .bind(media.bytes.map(|b| b.min(i64::MAX as u64) as i64))
            .bind(&media.file_name)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(not_found(format!("conversation {id}")).into());
            }
            let job = enqueue_in(&mut tx, &next).await?;
            tx.commit().await?;
            Ok(job.id)
        })
        .await
    }
}
