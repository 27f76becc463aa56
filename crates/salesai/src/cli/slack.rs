//! `salesai slack check|manifest`: set-up and the runbook's "Slack Bot 無回應" checks.

use std::process::ExitCode;

use crate::cli::output::print_json;
use crate::config::Config;

/// Slack set-up commands.
#[derive(clap::Subcommand, Debug)]
pub enum SlackCommand {
    /// auth.test with the bot token, the scopes present versus needed, the configured channels reachable
    Check {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the Slack app manifest with request URLs under a base URL
    Manifest {
        /// salesai's public URL [default: SALESAI_PUBLIC_URL]
        #[arg(long)]
        base_url: Option<String>,
    },
}

/// Runs a Slack command.
pub async fn run(config: &Config, command: SlackCommand) -> anyhow::Result<ExitCode> {
    match command {
        SlackCommand::Manifest { base_url } => {
            let Some(base) = base_url.or_else(|| config.public_url.as_ref().map(|u| u.to_string()))
            else {
                anyhow::bail!(
                    "give --base-url https://salesai.example.com (or set SALESAI_PUBLIC_URL)"
                );
            };
            print!("{}", salesai_slack::check::manifest(&base));
            Ok(ExitCode::SUCCESS)
        }
        SlackCommand::Check { json } => {
            let Some(slack_config) = config.slack.clone() else {
                anyhow::bail!(
                    "Slack is not configured: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"
                );
            };
            let client =
                salesai_slack::web_client(&slack_config).map_err(|e| anyhow::anyhow!(e))?;
            let report = salesai_slack::check::check(&client, &slack_config).await;
            if json {
                print_json(&report)?;
            } else {
                match (&report.auth_error, &report.team) {
                    (Some(err), _) => println!(
                        "auth.test   FAILED  {err}\n            check SLACK_BOT_TOKEN (OAuth & Permissions → Bot User OAuth Token)"
                    ),
                    (None, team) => println!(
                        "auth.test   ok      team {} as {}",
                        team.as_deref().unwrap_or("?"),
                        report.bot_user.as_deref().unwrap_or("?")
                    ),
                }
                if report.auth_ok {
                    if report.missing_scopes.is_empty() {
                        println!("scopes      ok      {}", report.scopes.join(", "));
                    } else {
                        println!(
                            "scopes      MISSING {}\n            add them under OAuth & Permissions (or recreate the app from `salesai slack manifest`) and reinstall",
                            report.missing_scopes.join(", ")
                        );
                    }
                    if report.channels.is_empty() {
                        println!(
                            "channels    none    set SLACK_CHANNELS=C0123=ichef,… to watch channels (DMs work without)"
                        );
                    }
                    for c in &report.channels {
                        match (&c.error, c.member) {
                            (Some(err), _) => println!(
                                "channel     FAILED  {} ({}): {err}",
                                c.channel, c.product_line
                            ),
                            (None, Some(false)) => println!(
                                "channel     NOT IN  {} ({}): invite the bot with /invite @salesai",
                                c.channel, c.product_line
                            ),
                            (None, _) => {
                                println!("channel     ok      {} ({})", c.channel, c.product_line)
                            }
                        }
                    }
                }
                println!("{}", if report.ok { "ok" } else { "NOT OK" });
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
