//! `medgate nightscout init`: writes the gateway profile for a Nightscout site
//! (`medgate_node::nightscout::profile`, where the classes are described) after checking the
//! site's URL and that its API_SECRET is at hand.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;

use medgate_node::nightscout::MIN_API_SECRET_LEN;
use medgate_node::nightscout::profile::{SECRET_NAME, TOKEN_SECRET_NAME, profile};

use crate::Failure;

#[derive(Subcommand)]
pub enum NightscoutCommand {
    /// Write a medgate.toml for a Nightscout site: every route classified, default-deny.
    Init {
        /// The Nightscout site (`https://ns.example.org`, or `http://127.0.0.1:1337` on the
        /// same host).
        #[arg(long)]
        upstream: String,
        /// The environment variable holding the site's API_SECRET: checked here (Nightscout
        /// wants at least 12 characters), then stored with `medgate admin secret set` (the
        /// command is printed); never written to the file.
        #[arg(long, value_name = "VAR")]
        api_secret_from_env: String,
        /// The URL apps use to reach the gateway (default: http://<gateway.listen>).
        #[arg(long)]
        public_url: Option<String>,
        /// Where the file goes (refused if it exists).
        #[arg(long, default_value = "medgate.toml")]
        out: PathBuf,
    },
}

pub fn run(command: NightscoutCommand) -> Result<(), Failure> {
    let NightscoutCommand::Init {
        upstream,
        api_secret_from_env,
        public_url,
        out,
    } = command;
    let usage = |message: String| Failure::Usage(anyhow!(message));
    let parsed = url::Url::parse(&upstream)
        .map_err(|_| usage(format!("--upstream {upstream:?} is not a URL")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(usage(
            "--upstream must be an http:// or https:// URL".into(),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(usage(
            "--upstream must not carry a secret in the URL: pass it with --api-secret-from-env"
                .into(),
        ));
    }
    let secret = std::env::var(&api_secret_from_env).map_err(|_| {
        usage(format!(
            "--api-secret-from-env: {api_secret_from_env} is not set"
        ))
    })?;
    if secret.chars().count() < MIN_API_SECRET_LEN {
        return Err(usage(format!(
            "{api_secret_from_env}: Nightscout's API_SECRET has at least {MIN_API_SECRET_LEN} characters"
        )));
    }
    if let Some(public_url) = &public_url {
        url::Url::parse(public_url)
            .map_err(|_| usage(format!("--public-url {public_url:?} is not a URL")))?;
    }
    let text = profile(parsed.as_str(), public_url.as_deref());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&out)
        .map_err(|error| usage(format!("{}: {error}", out.display())))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    println!("wrote {}", out.display());
    println!(
        "next, with the node running (medgate --config {} serve):",
        out.display()
    );
    println!(
        "  medgate admin app create <APP_ID> --scopes \"nightscout:read nightscout:data-write nightscout:therapy-write\""
    );
    println!("  medgate admin secret set <APP_ID> {SECRET_NAME} --from-env {api_secret_from_env}");
    println!(
        "and for v3 clients (AndroidAPS NSClientV3, xDrip+ follower v3), an access token of a Nightscout subject (Admin Tools), which the gateway exchanges for Nightscout's JWT:"
    );
    println!("  medgate admin secret set <APP_ID> {TOKEN_SECRET_NAME} --from-env NS_ACCESS_TOKEN");
    Ok(())
}
