//! `salesai token create|list|revoke`.

use std::process::ExitCode;

use salesai_core::domain::Role;
use salesai_core::store::NewApiToken;

use crate::cli::output::{print_json, table};
use crate::config::Config;

/// Token operations.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is stored. A token for a person
    /// (--for) reaches what that person may at each request: their current role (its --role can
    /// only narrow it), teams and state
    Create {
        /// A name to recognise it by (unique among live tokens)
        #[arg(long)]
        name: String,
        /// What it may do: admin, manager, service or rep [default with --for: the person's role]
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// The person it belongs to, by e-mail (created as a rep if new); without it, a
        /// service token for an integration
        #[arg(long = "for", value_name = "EMAIL")]
        owner: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets)
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name or id
    Revoke {
        /// The token's name or id
        name_or_id: String,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).map_err(|e| e.0)
}

/// Runs a token command.
pub async fn run(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let code = match command {
        TokenCommand::Create {
            name,
            role,
            owner,
            json,
        } => {
            let name = name.trim().to_owned();
            anyhow::ensure!(
                !name.is_empty() && name.len() <= 100,
                "--name must be 1 to 100 characters"
            );
            let (role, user_id) = match owner.as_deref().map(str::trim) {
                Some(email) => {
                    anyhow::ensure!(
                        email.contains('@') && email.len() <= 254,
                        "--for takes the person's e-mail address, got {email:?}"
                    );
                    anyhow::ensure!(
                        role != Some(Role::Service),
                        "a service token is for an integration and belongs to no one; drop --for or choose another --role"
                    );
                    let id = app
                        .store
                        .find_or_create_user(Some(email), None, email)
                        .await?;
                    let held = app.store.get_user(&id).await?.map_or(Role::Rep, |p| p.role);
                    let role = role.unwrap_or(held);
                    anyhow::ensure!(
                        role.is_within(held),
                        "{email} has the {} role; a token for them reaches at most that (a token can only narrow its person's role). Give them the {} role first (salesai users role {email} {}), or drop --role",
                        held.as_str(),
                        role.as_str(),
                        role.as_str()
                    );
                    (role, Some(id))
                }
                None => (
                    role.ok_or_else(|| {
                        anyhow::anyhow!(
                            "name the token's --role (admin, manager, service, rep), or give --for EMAIL to make it a person's"
                        )
                    })?,
                    None,
                ),
            };
            let secret = salesai_core::token::generate_token();
            let token = app
                .store
                .create_api_token(NewApiToken {
                    name,
                    role,
                    token_hash: salesai_core::token::hash_token(&secret),
                    user_id,
                })
                .await?;
            if json {
                print_json(
                    &serde_json::json!({ "token": secret, "id": token.id, "name": token.name, "role": token.role }),
                )?;
            } else {
                println!("{secret}");
                eprintln!(
                    "created token {} ({}, role {}); it is shown only now — store it in your secret manager",
                    token.id,
                    token.name,
                    token.role.as_str()
                );
            }
            ExitCode::SUCCESS
        }
        TokenCommand::List { json } => {
            let tokens = app.store.list_api_tokens().await?;
            let mut owners = std::collections::BTreeMap::new();
            for id in tokens.iter().filter_map(|t| t.user_id.as_deref()) {
                if let Some(user) = app.store.get_user(id).await? {
                    owners.insert(id.to_owned(), user.email.unwrap_or(user.display_name));
                }
            }
            if json {
                print_json(&tokens)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.name.clone(),
                            t.role.as_str().to_owned(),
                            t.user_id.as_ref().map_or_else(
                                || "(service)".to_owned(),
                                |id| owners.get(id).cloned().unwrap_or_else(|| id.clone()),
                            ),
                            t.created_at.format("%Y-%m-%d %H:%M").to_string(),
                            t.last_used_at
                                .map_or("never".into(), |d| d.format("%Y-%m-%d %H:%M").to_string()),
                            t.revoked_at.map_or("live".into(), |d| {
                                format!("revoked {}", d.format("%Y-%m-%d"))
                            }),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "NAME",
                            "ROLE",
                            "OWNER",
                            "CREATED",
                            "LAST USED",
                            "STATE"
                        ],
                        &rows
                    )
                );
            }
            ExitCode::SUCCESS
        }
        TokenCommand::Revoke { name_or_id } => {
            if app.store.revoke_api_token(&name_or_id).await? {
                println!("revoked {name_or_id}");
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "no live token named or numbered {name_or_id:?}; `salesai token list` shows them"
                );
                ExitCode::FAILURE
            }
        }
    };
    database.close().await;
    Ok(code)
}
