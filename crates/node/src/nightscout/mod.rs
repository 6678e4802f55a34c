//! Nightscout, the open remote-CGM server, behind the gateway: the route profile that
//! classifies its API by risk (`profile`), and a Nightscout-compatible upstream for the tests
//! and the demo (`upstream`).

pub mod profile;
pub mod upstream;

/// Nightscout refuses to start with a shorter `API_SECRET`.
pub const MIN_API_SECRET_LEN: usize = 12;
