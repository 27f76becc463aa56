//! `salesai users …`: people and their access. `invite` creates a person (or updates one) and
//! prints a one-time sign-in link for the web app; `link` prints a new link; `list` shows who is
//! there; `role`, `team`, `deactivate`, `activate` change a person. People also appear on their
//! first upload or Slack message (as reps).

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
    /// Create a person (or update their role and team) and print a one-time sign-in link
    Invite {
        /// Their e-mail
        email: String,
        /// Their role: admin, manager or rep
        #[arg(long, default_value = "rep")]
        role: String,
        /// Their team
        #[arg(long)]
        team: Option<String>,
        /// Their name (shown in the web app and reports)
        #[arg(long)]
        name: Option<String>,
        /// The teams they manage, comma-separated (managers)
        #[arg(long)]
        manages: Option<String>,
    },
    /// Print a new one-time sign-in link for a person
    Link {
        /// Their id or e-mail
        who: String,
    },
    /// List people with their role, team and status
    List,
    /// Deactivate a person: they cannot sign in, and their sessions and tokens stop at once
    Deactivate {
        /// Their id or e-mail
        who: String,
    },
    /// Reactivate a deactivated person
    Activate {
        /// Their id or e-mail
        who: String,
    },
}

/// The person with this id or e-mail.
async fn find(app: &salesai_core::App, who: &str) -> anyhow::Result<salesai_core::store::Person> {
    let who = who.trim();
    let people = app.store.people().await?;
    people
        .into_iter()
        .find(|p| p.user.id == who || p.user.email.as_deref() == Some(who.to_lowercase().as_str()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no person {who:?}; see `salesai users list`, or create them with `salesai users invite EMAIL`"
            )
        })
}

/// A fresh one-time sign-in link's path for a person.
async fn sign_in_path(app: &salesai_core::App, user_id: &str) -> anyhow::Result<String> {
    Ok(salesai_core::access::issue_link(
        app.store.as_ref(),
        Some(user_id),
        None,
        salesai_core::access::LINK_TTL,
    )
    .await?)
}

/// The full sign-in link for a path: under `SALESAI_PUBLIC_URL`, else where `salesai serve`
/// last said it answers (recorded in the database), else the configured bind address.
async fn full_link(config: &Config, app: &salesai_core::App, path: &str) -> String {
    let served = app
        .store
        .fact(crate::cli::serve::PUBLIC_URL_FACT)
        .await
        .ok()
        .flatten();
    app.link(
        path,
        &served.unwrap_or_else(|| format!("http://{}", config.bind)),
    )
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
        UsersCommand::Invite {
            email,
            role,
            team,
            name,
            manages,
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!(e.0))?;
            anyhow::ensure!(
                role != Role::Service,
                "a person is an admin, manager or rep; for an integration create a service token: salesai token create --name NAME --role service"
            );
            let (app, database) = crate::runtime::open_app(config).await?;
            let result = async {
                let person = app
                    .store
                    .invite_person(&email, name.as_deref().unwrap_or(""), role, team.as_deref())
                    .await?;
                if let Some(manages) = manages {
                    let change = salesai_core::store::PersonChange {
                        manages: Some(manages.split(',').map(|t| t.trim().to_owned()).collect()),
                        ..Default::default()
                    };
                    app.store.update_person(&person.user.id, &change).await?;
                }
                let path = sign_in_path(&app, &person.user.id).await?;
                anyhow::Ok((person, full_link(config, &app, &path).await))
            }
            .await;
            database.close().await;
            let (person, link) = result?;
            println!(
                "{} <{}> is a {}{}.",
                person.user.display_name,
                person.user.email.as_deref().unwrap_or(""),
                person.user.role.as_str(),
                person
                    .team
                    .as_deref()
                    .map(|t| format!(" in team {t}"))
                    .unwrap_or_default()
            );
            println!("Sign-in link (works once, for 15 minutes; send it to them):");
            println!("  {link}");
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Link { who } => {
            let (app, database) = crate::runtime::open_app(config).await?;
            let result = async {
                let person = find(&app, &who).await?;
                anyhow::ensure!(
                    person.active,
                    "{} is deactivated; reactivate them first (salesai users activate {who})",
                    person.user.display_name
                );
                let path = sign_in_path(&app, &person.user.id).await?;
                anyhow::Ok(full_link(config, &app, &path).await)
            }
            .await;
            database.close().await;
            println!("{}", result?);
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::List => {
            let (app, database) = crate::runtime::open_app(config).await?;
            let people = app.store.people().await;
            database.close().await;
            println!(
                "{:<24} {:<30} {:<8} {:<12} {:<16} STATUS",
                "NAME", "E-MAIL", "ROLE", "TEAM", "MANAGES"
            );
            for p in people? {
                println!(
                    "{:<24} {:<30} {:<8} {:<12} {:<16} {}",
                    p.user.display_name,
                    p.user.email.as_deref().unwrap_or("-"),
                    p.user.role.as_str(),
                    p.team.as_deref().unwrap_or("-"),
                    if p.manages.is_empty() {
                        "-".to_owned()
                    } else {
                        p.manages.join(",")
                    },
                    if p.active { "active" } else { "deactivated" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Deactivate { who } => set_active(config, &who, false).await,
        UsersCommand::Activate { who } => set_active(config, &who, true).await,
    }
}

/// Deactivates (ending their sessions in the same transaction) or reactivates a person.
async fn set_active(config: &Config, who: &str, active: bool) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let result = async {
        let person = find(&app, who).await?;
        let change = salesai_core::store::PersonChange {
            active: Some(active),
            ..Default::default()
        };
        app.store.update_person(&person.user.id, &change).await?;
        anyhow::Ok(person)
    }
    .await;
    database.close().await;
    let person = result?;
    println!(
        "{} is {}",
        person.user.display_name,
        if active {
            "active again; send them a link with `salesai users link`"
        } else {
            "deactivated: their sessions and tokens no longer work"
        }
    );
    Ok(ExitCode::SUCCESS)
}
