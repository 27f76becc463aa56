//! Customers (opportunities), on both backends.

use async_trait::async_trait;
use salesai_core::access::Reach;
use salesai_core::domain::Opportunity;
use salesai_core::store::{Customers, StoreError, StoreResult};

use super::super::StoreImpl;
use super::{not_found, opportunity_from_row};
use crate::error::{Fail, run};

macro_rules! opportunity_select {
    () => {
        "SELECT o.id, o.customer_number, o.company_name, o.product_line, o.owner_user_id, o.status, \
         o.latest_score, o.created_at, \
         (SELECT COUNT(*) FROM conversations c WHERE c.opportunity_id = o.id) AS conversations \
         FROM opportunities o"
    };
}

#[async_trait]
impl Customers for StoreImpl {
    async fn get_opportunity(&self, customer_number: &str) -> StoreResult<Option<Opportunity>> {
        run(async {
            crate::statement::query(sql!(concat!(
                opportunity_select!(),
                " WHERE o.customer_number = $1"
            )))
            .bind(customer_number)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(opportunity_from_row)
            .transpose()
        })
        .await
    }

    async fn search_opportunities(
        &self,
        query: &str,
        limit: u32,
        reach: &Reach,
    ) -> StoreResult<Vec<Opportunity>> {
        // The people whose customers a reach covers, over `$3`: a customer is theirs when one
        // of them owns it or has a call with it.
        macro_rules! within {
            ($people:literal) => {
                concat!(
                    " AND (o.owner_user_id IN (",
                    $people,
                    ") OR EXISTS (SELECT 1 FROM conversations c \
                     WHERE c.opportunity_id = o.id AND c.rep_user_id IN (",
                    $people,
                    ")))"
                )
            };
        }
        macro_rules! search {
            ($within:expr) => {
                sql!(concat!(
                    opportunity_select!(),
                    " WHERE ($1 = '' OR o.customer_number = $1 \
                     OR strpos(lower(o.company_name), lower($1)) > 0)",
                    $within,
                    " ORDER BY o.created_at DESC, o.id LIMIT $2"
                ))
            };
        }
        let limit = i64::from(limit.clamp(1, 500));
        run(async {
            let rows = match reach {
                Reach::All => {
                    crate::statement::query(search!(""))
                        .bind(query)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?
                }
                Reach::Own(user) => {
                    crate::statement::query(search!(within!("SELECT $3")))
                        .bind(query)
                        .bind(limit)
                        .bind(user)
                        .fetch_all(&self.pool)
                        .await?
                }
                Reach::Teams(user) => {
                    crate::statement::query(search!(within!(
                        "SELECT $3 UNION SELECT u.id FROM users u \
                         JOIN team_managers m ON m.team = u.team WHERE m.user_id = $3"
                    )))
                    .bind(query)
                    .bind(limit)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            rows.iter().map(opportunity_from_row).collect()
        })
        .await
    }

    async fn create_opportunity(
        &self,
        customer_number: &str,
        company_name: &str,
        product_line: &str,
        owner_user_id: Option<&str>,
    ) -> StoreResult<Opportunity> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO opportunities (id, customer_number, company_name, product_line, owner_user_id, \
                 status_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, now(), now(), now())"
            ))
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(customer_number)
            .bind(company_name)
            .bind(product_line)
            .bind(owner_user_id)
            .execute(self.pool.writes())
            .await
            .map_err(|e| match crate::error::is_unique_violation(&e) {
                true => StoreError::Conflict(format!("customer {customer_number} already exists")).into(),
                false => Fail::from(e),
            })?;
            Ok(())
        })
        .await?;
        self.get_opportunity(customer_number)
            .await?
            .ok_or_else(|| not_found(format!("opportunity {customer_number}")))
    }
}
