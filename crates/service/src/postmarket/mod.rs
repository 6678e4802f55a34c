//! The postmarket figures a manufacturer reports after release (`medgate report postmarket`,
//! the console's versions in the field): [`model`] computes them from the audit log, the
//! releases and the installations, with no I/O; [`gather`] reads those from a store, checking
//! the audit chain in the same pass, so nothing is counted that the verified chain does not
//! hold.

pub mod model;

pub use model::*;

use medgate_store::{ChainBreak, ChainReport, Installation, InstallationFilter, Store, StoreError};

/// Installations read per page.
const PAGE: usize = 1000;

/// The figures of `[from, to)` (`from` none: since the first entry), and what the walk of the
/// chain found (`expected`: a signed checkpoint's hash it must contain, see
/// [`ChainReport::contains_expected`]); a chain that does not verify yields no figures.
pub async fn gather(
    store: &dyn Store,
    from: Option<i64>,
    to: i64,
    expected: Option<[u8; 32]>,
) -> Result<Result<(Postmarket, ChainReport), ChainBreak>, StoreError> {
    // One pass: the chain is checked entry by entry as the figures are counted (a node may
    // append meanwhile; the report's head says where it stopped).
    let mut builder = Builder::new(from, to);
    let chain = match medgate_store::audit_chain_report_visiting(store, expected, |entry| {
        builder.add(entry)
    })
    .await?
    {
        Ok(chain) => chain,
        Err(broken) => return Ok(Err(broken)),
    };
    let mut releases = Vec::new();
    for app in store.list_apps().await? {
        releases.extend(store.list_releases(&app.id).await?);
    }
    let mut installations: Vec<Installation> = Vec::new();
    loop {
        let after = installations.last().map(|i| i.id.clone());
        let page = store
            .list_installations(&InstallationFilter::app(None), after.as_deref(), PAGE)
            .await?;
        let full = page.len() == PAGE;
        installations.extend(page);
        if !full {
            break;
        }
    }
    Ok(Ok((builder.finish(&releases, &installations), chain)))
}
