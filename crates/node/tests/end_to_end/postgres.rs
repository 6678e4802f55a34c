//! A whole node on PostgreSQL (`[store] url`), on a fresh database: attestation, the gateway,
//! a revocation that the gateway learns from the feed, and an audit chain that verifies.

use std::time::Duration;

use http::StatusCode;
use medgate_store::postgres::testing;

use crate::common::Stack;

#[tokio::test]
async fn a_node_attests_forwards_and_revokes_on_postgres() {
    let Some((_store, database)) = testing::fresh().await else {
        return;
    };
    let url = database.url();
    let stack = Stack::start_with(|config| config.store.url = Some(url)).await;
    let client = stack.client();
    client.attest().await.unwrap();
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    stack
        .revoke_installation(client.installation_id().as_str())
        .await;
    let took = stack
        .eventually(5, || async {
            client.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let (entries, _) = medgate_store::verify_audit_chain(&*stack.node.store())
        .await
        .unwrap()
        .unwrap();
    assert!(
        entries >= 4,
        "key, app, release, decision, revocation: {entries}"
    );
}
