//! `medgate store copy`: moves a deployment between backends.

use std::path::Path;

use clap::Subcommand;
use medgate_store::copy;

use crate::{Failure, load_config};

#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy every table (but short-lived challenges) into an empty store, in one transaction,
    /// verifying the audit chain on both sides. Stop the nodes on the source first.
    Copy {
        /// The store to read, as `[store] url` takes it: `sqlite://DIR` or `postgres://…`.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty store to write (migrated first).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub(crate) async fn run(config_path: Option<&Path>, command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Copy { from, to } => {
            let config = load_config(config_path)?;
            let open = |url: String| {
                let mut config = config.clone();
                config.store.url = Some(url);
                async move {
                    medgate_node::open_store(&config)
                        .await
                        .map_err(|e| Failure::Usage(e.into()))
                }
            };
            let (source, target) = (open(from).await?, open(to).await?);
            let report = copy::copy(&*source, &*target).await?;
            for (table, rows) in &report.rows {
                println!("{table}: {rows} rows");
            }
            match &report.audit_head {
                Some(head) => println!(
                    "audit chain: {} entries, head {head}, verified on both sides",
                    report.audit_entries
                ),
                None => println!("audit chain: empty on both sides"),
            }
            Ok(())
        }
    }
}
