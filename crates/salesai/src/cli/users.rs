//! `salesai users role WHO ROLE`: who may see the team's reports. People are created by their
//! first upload or Slack message (as reps); managers and admins are named here.

use std::process::ExitCode;

use salesai_core::domain::Role;

use crate::config::Config;

/// User commands.
#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Set a user's role: admin, manager, service or rep
    Role {
        /// The user's id, e-mail or Slack user id
        who: String,
        /// The new role
        role: String,
    },
}

/// Runs a user command.
pub async fn run(config: &Config, command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::Role { who, role } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!(e.0))?;
            let (app, database) = crate::runtime::open_app(config).await?;
            let user = app.store.set_user_role(who.trim(), role).await;
            database.close().await;
            match user? {
                Some(u) => {
                    println!(
                        "{} ({}) is now {}",
                        u.display_name,
                        u.email.or(u.slack_user_id).unwrap_or(u.id),
                        u.role.as_str()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!(
                        "no user {who:?}: people appear after their first upload or Slack message; give an id, e-mail or Slack user id"
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
