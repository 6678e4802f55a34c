//! Plumbing shared by medgate's control plane (`medgate-server`) and data plane
//! (`medgate-gateway`). Nothing here makes a security decision; `resource` and `replay` are
//! the mechanics (refusal shapes, a bounded set of seen proofs) both planes' checks share.

pub mod audit;
pub mod body;
pub mod client_ip;
pub mod clock;
pub mod duration;
pub mod listen;
pub mod metrics;
pub mod postmarket;
pub mod problem;
pub mod ratelimit;
pub mod replay;
pub mod resource;
pub mod shared;
pub mod telemetry;
pub mod tls;

pub use clock::{Clock, ManualClock, SystemClock};
