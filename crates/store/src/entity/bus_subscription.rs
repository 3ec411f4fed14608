//! `bus_subscriptions`: which consumer groups receive which topics.

use sea_orm::entity::prelude::*;

/// One consumer group's subscription to one topic.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bus_subscriptions")]
pub struct Model {
    /// Topic name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub topic: String,
    /// Consumer group.
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer_group: String,
    /// Coalesce pending messages with the same key in this group.
    pub coalesce: bool,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: i32,
    /// Only publications with this label are written for this group
    /// (none: all of them).
    pub label: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
