//! The shell every service runs in: the process (`process`: log setup, a
//! runtime, the exit code), its listener (`listen`), why it could not start
//! (`StartError`), and the router around its own routes (`ServiceRouter`:
//! `/livez`, `/metrics`, request metrics, body limit, CORS). Serving with
//! request deadlines and a graceful stop is `crate::serve`.

mod error;
mod listen;
mod process;
mod router;

pub use error::StartError;
pub use listen::{bind, listen_addr};
pub use process::run_process;
pub use router::ServiceRouter;
