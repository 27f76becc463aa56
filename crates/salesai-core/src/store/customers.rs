//! Customers (opportunities), found by customer number.

use async_trait::async_trait;

use crate::domain::Opportunity;

use super::StoreResult;

/// Customers (opportunities), found by customer number.
#[async_trait]
pub trait Customers: Send + Sync {
    /// The opportunity with this customer number.
    async fn get_opportunity(&self, customer_number: &str) -> StoreResult<Option<Opportunity>>;

    /// Opportunities within `reach` whose customer number equals `query` or whose company name
    /// contains it (case-insensitively), most recently created first; an empty query lists
    /// all. A customer is within reach when its owner is, or a call with it is (a rep: their
    /// own; a manager: theirs and their teams' reps'; everyone for `Reach::All`).
    async fn search_opportunities(
        &self,
        query: &str,
        limit: u32,
        reach: &crate::domain::Reach,
    ) -> StoreResult<Vec<Opportunity>>;

    /// Creates an opportunity; `Conflict` when the customer number is taken.
    async fn create_opportunity(
        &self,
        customer_number: &str,
        company_name: &str,
        product_line: &str,
        owner_user_id: Option<&str>,
    ) -> StoreResult<Opportunity>;
}
