//! Routing policies: versions per tenant, never edited in place.
//!
//! The rules in force for an account of segment S: the built-in table
//! (`RoutingPolicy::default()`, the product's defaults), each replaced by
//! the tenant default's stored rule for the same trigger, each replaced by
//! S's stored rule. A stored policy names only the triggers it changes.

use retain_domain::routing::{Assignment, RoutingPolicy};
use retain_proto::routing as wire;
use retain_proto::v1;
use retain_runtime::error::Error;
use sea_orm::ConnectionTrait;

use crate::sql;

/// The policy in force for `segment` ('' = the tenant default), as the
/// router applies it, its assignment strategy and the version that set it
/// last (0: built-in).
pub async fn effective<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<(RoutingPolicy, Assignment, i64), Error> {
    let mut policy = RoutingPolicy::default();
    let (mut assignment, mut version) = (Assignment::default(), 0);
    let stored = [
        sql::latest_policy(db, tenant, "").await?,
        match segment {
            "" => None,
            s => sql::latest_policy(db, tenant, s).await?,
        },
    ];
    for (i, p) in stored.into_iter().enumerate() {
        let Some(p) = p else { continue };
        // Stored policies were checked when put.
        let rules = wire::rules_from_proto(&p)
            .map_err(|v| Error::Internal(format!("stored routing policy {}: {v}", p.version)))?;
        if i == 0 {
            policy.rules.extend(rules);
        } else {
            policy.segments.insert(segment.to_owned(), rules);
        }
        assignment = wire::assignment_from_proto(p.assignment).unwrap_or_default();
        version = p.version;
    }
    Ok((policy, assignment, version))
}

/// The policy in force for `segment` on the wire: every trigger's rule.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<v1::RoutingPolicy, Error> {
    let (policy, assignment, version) = effective(db, tenant, segment).await?;
    let mut rules = policy.rules.clone();
    if let Some(own) = policy.segments.get(segment) {
        rules.extend(own.clone());
    }
    Ok(v1::RoutingPolicy {
        segment: segment.to_owned(),
        rules: wire::rules_to_proto(&rules),
        assignment: match assignment {
            Assignment::RoundRobin => v1::AssignmentStrategy::RoundRobin,
            Assignment::FewestOpen => v1::AssignmentStrategy::FewestOpen,
        } as i32,
        version,
    })
}

/// Checks `policy` and stores it as the tenant's next version.
pub async fn put<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    policy: Option<&v1::RoutingPolicy>,
    now: i64,
    templates: &crate::Templates,
) -> Result<v1::RoutingPolicy, Error> {
    let Some(policy) = policy else {
        return Err(Error::invalid("policy", "is required"));
    };
    wire::rules_from_request(policy)?;
    for (i, rule) in policy.rules.iter().enumerate() {
        if let Some(v1::routing_rule::Action::Email(e)) = &rule.action
            && !templates.has(&e.template)
        {
            return Err(Error::invalid(
                format!("policy.rules[{i}].email.template"),
                format!(
                    "no template {} (known: {})",
                    retain_domain::validation::quote(&e.template),
                    templates.keys().join(", ")
                ),
            ));
        }
    }
    sql::put_policy(db, tenant, policy, now)
        .await?
        .ok_or_else(|| Error::Unavailable("routing policy versions are contended; retry".into()))
}
