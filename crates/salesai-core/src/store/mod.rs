//! The storage interface: everything salesai keeps, as one trait per capability (the job
//! queue, conversations, customers, people, Slack state, operations) with one implementation
//! per backend (SQLite for the embedded default, PostgreSQL for teams). HTTP handlers and
//! workers hold an `Arc<dyn Store>` and never know which backend they talk to.
//!
//! One file per capability, each named like the file of `salesai-db/src/shared/` that
//! implements it for both backends: a feature (deals, follow-ups, alerts, reports) adds its
//! trait and types in a file of its own here, its implementation in the same-named file there,
//! and one line to [`Store`]. Everything is re-exported here: callers write
//! `salesai_core::store::ConversationFilter`, whichever file holds it.

use serde::{Deserialize, Serialize};

mod access;
mod conversations;
mod customers;
mod notes;
mod operations;
mod people;
mod queue;
mod slack;
mod voices;

pub use access::*;
pub use conversations::*;
pub use customers::*;
pub use notes::*;
pub use operations::*;
pub use people::*;
pub use queue::*;
pub use slack::*;
pub use voices::*;

/// A storage failure, by what callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error; usually transient.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The input broke a rule the database enforces.
    #[error("{0}")]
    InvalidInput(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    /// The database was migrated by a newer salesai than this binary.
    #[error(
        "the database schema is at version {database} but this salesai only knows up to {binary}; \
         run the newer salesai release, or roll the schema back with that release's `salesai migrate down`"
    )]
    SchemaTooNew {
        /// The database's newest applied migration.
        database: i64,
        /// The newest migration this binary carries.
        binary: i64,
    },
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// The stable error code for this failure.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            StoreError::InvalidInput(_) | StoreError::NotFound(_) | StoreError::Conflict(_) => {
                crate::ErrorCode::InvalidInput
            }
            _ => crate::ErrorCode::DatabaseError,
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The team server.
    Postgres,
}

impl Backend {
    /// The backend's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

pub trait Store:
    JobQueue
    + Conversations
    + Customers
    + People
    + Access
    + MeetingNotes
    + Voices
    + SlackState
    + Operations
    + 'static
{
}

impl<T> Store for T where
    T: JobQueue
        + Conversations
        + Customers
        + People
        + Access
        + MeetingNotes
        + Voices
        + SlackState
        + Operations
        + 'static
{
}

/// The store's capability traits, for `use salesai_core::store::prelude::*` where a caller
/// calls store methods through an `Arc<dyn Store>`.
pub mod prelude {
    pub use super::{
        Access, Conversations, Customers, JobQueue, MeetingNotes, Operations, People, SlackState,
        Store, Voices,
    };
}
