//! Who a Slack user is to salesai, and what they may reach: every command, button and form
//! resolves the Slack user to a person and asks the same rules as the web app and the API
//! (`salesai_core::access`). Someone salesai does not know, or a deactivated person, is told to
//! ask an admin and sees nothing else.

use salesai_core::access::Principal;
use salesai_core::domain::Conversation;
use salesai_core::store::{Person, Store, StoreResult};

use crate::text::Language;

/// A Slack user as salesai sees them.
#[derive(Debug, Clone)]
pub(crate) enum SlackUser {
    /// An active person: what they may do is their principal's.
    Known(Box<Person>),
    /// No person has this Slack user id (never invited, never shared a call).
    Unknown,
    /// Their account is deactivated.
    Deactivated,
}

impl SlackUser {
    /// The person behind a Slack user id, found by that id only (never created here).
    pub(crate) async fn resolve(store: &dyn Store, slack_user_id: &str) -> StoreResult<SlackUser> {
        let id = slack_user_id.trim();
        if id.is_empty() {
            return Ok(SlackUser::Unknown);
        }
        Ok(match store.person_by_identity(Some(id), None).await? {
            Some(p) if p.active => SlackUser::Known(Box::new(p)),
            Some(_) => SlackUser::Deactivated,
            None => SlackUser::Unknown,
        })
    }

    /// The person and their principal, or what to tell a Slack user who is not one.
    pub(crate) fn person(&self, lang: Language) -> Result<(&Person, Principal), &'static str> {
        match self {
            SlackUser::Known(p) => Ok((p, Principal::person(p))),
            SlackUser::Unknown => Err(unknown(lang)),
            SlackUser::Deactivated => Err(deactivated(lang)),
        }
    }
}

/// What a Slack user salesai does not know is told.
pub(crate) fn unknown(lang: Language) -> &'static str {
    lang.t().salesai_does_not_know_your_slack
}

/// What `/salesai login` answers when neither the Slack id nor the e-mail of the Slack profile
/// names anyone salesai knows.
pub(crate) fn not_invited(lang: Language) -> &'static str {
    lang.t().no_one_with_your_slack_account
}

/// What a deactivated person is told.
pub(crate) fn deactivated(lang: Language) -> &'static str {
    lang.t().your_salesai_account_is_deactivated_ask
}

/// Whether `principal` may reach `conversation` (its rep's team is read when the rule needs
/// it): the call's rep, a manager of their team, an admin.
pub(crate) async fn may_reach(
    store: &dyn Store,
    principal: &Principal,
    conversation: &Conversation,
) -> StoreResult<bool> {
    let rep = match &conversation.rep_user_id {
        Some(rep) => store.person(rep).await?,
        None => None,
    };
    Ok(principal.may_reach(rep.as_ref()).is_ok())
}
