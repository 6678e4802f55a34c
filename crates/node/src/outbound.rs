//! The HTTP client for what the node sends out to URLs its operator configured (partners'
//! JWKS, the alerts webhook): https with the WebPKI roots, or plain http, which the callers
//! allow only to this machine (`medgate_server::check_outbound_url`).

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub(crate) type OutboundClient<B> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

pub(crate) fn client<B>() -> OutboundClient<B>
where
    B: http_body::Body + Send,
    B::Data: Send,
{
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}
