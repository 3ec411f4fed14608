//! Every statement the notification service runs, by aggregate: the
//! routing policy, routing's decisions, the CSM queue's tasks, account
//! contexts, email and in-app records, and email quotas. Each file owns its tables
//! (see the migrations m0009, m0010, m0014, m0015); callers use `sql::…`.

mod accounts;
mod actions;
mod messages;
mod policies;
mod quota;
mod tasks;

pub use accounts::*;
pub use actions::*;
pub use messages::*;
pub use policies::*;
pub use quota::*;
pub use tasks::*;
