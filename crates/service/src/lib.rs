//! Plumbing shared by medgate's control plane (`medgate-server`) and data plane
//! (`medgate-gateway`). Nothing here makes a security decision.

pub mod audit;
pub mod body;
pub mod client_ip;
pub mod clock;
pub mod duration;
pub mod listen;
pub mod metrics;
pub mod problem;
pub mod ratelimit;
pub mod shared;
pub mod tls;

pub use clock::{Clock, ManualClock, SystemClock};
