//! sea-orm entities, one module per table.

pub mod account;
pub mod bus_message;
pub mod bus_subscription;
