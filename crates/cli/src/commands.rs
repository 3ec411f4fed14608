//! The client commands that act on one thing: a task, the scoring model,
//! the routing policy.

use retain_proto::v1;

use crate::args::{ModelAction, PolicyAction, TaskAction};
use crate::{client, json};

/// Now, seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `YYYY-MM` as the period of that calendar month.
pub(crate) fn month_period(month: &str) -> anyhow::Result<retain_proto::v1::Period> {
    let parsed = month.split_once('-').and_then(|(y, m)| {
        let (y, m) = (y.parse::<i32>().ok()?, m.parse::<u32>().ok()?);
        ((1970..=9999).contains(&y) && (1..=12).contains(&m)).then_some((y, m))
    });
    let Some((y, m)) = parsed else {
        anyhow::bail!("--month {month:?}: expected YYYY-MM, like 2026-10");
    };
    let p = retain_domain::Period::month(y, m);
    Ok(retain_proto::v1::Period {
        start: Some(retain_proto::convert::from_micros(p.start.micros())),
        end: Some(retain_proto::convert::from_micros(p.end.micros())),
    })
}

/// Claims, completes or dismisses one task, and shows it after.
pub(crate) async fn act(remote: &client::Remote, action: TaskAction) -> anyhow::Result<()> {
    let mut tasks =
        v1::notification_service_client::NotificationServiceClient::new(remote.channel.clone());
    let (task, done) = match action {
        TaskAction::Claim { task_id, assignee } => (
            tasks
                .claim_task(remote.request(v1::ClaimTaskRequest { task_id, assignee }))
                .await
                .map_err(|e| remote.failed("ClaimTask", e))?
                .into_inner()
                .task,
            "claimed",
        ),
        TaskAction::Complete { task_id, note } => (
            tasks
                .complete_task(remote.request(v1::CompleteTaskRequest { task_id, note }))
                .await
                .map_err(|e| remote.failed("CompleteTask", e))?
                .into_inner()
                .task,
            "completed",
        ),
        TaskAction::Dismiss { task_id, reason } => (
            tasks
                .dismiss_task(remote.request(v1::DismissTaskRequest { task_id, reason }))
                .await
                .map_err(|e| remote.failed("DismissTask", e))?
                .into_inner()
                .task,
            "dismissed",
        ),
    };
    if let Some(t) = task {
        let who = if t.assignee.is_empty() {
            "nobody"
        } else {
            &t.assignee
        };
        say!(
            "{done}: {} — {} ({}), assigned to {who}",
            t.task_id,
            t.title,
            t.account_id
        );
    }
    Ok(())
}

/// A JSON file as message `name`, naming the file when it does not read.
fn read_json<M: prost::Message + Default>(name: &str, file: &std::path::Path) -> anyhow::Result<M> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    json::parse(name, &text).with_context(|| format!("{} is not a {name} in JSON", file.display()))
}

/// `retain model …`.
pub(crate) async fn model(remote: &client::Remote, action: ModelAction) -> anyhow::Result<()> {
    let mut health = v1::health_service_client::HealthServiceClient::new(remote.channel.clone());
    match action {
        ModelAction::Get { segment } => {
            let model = health
                .get_scoring_model(remote.request(v1::GetScoringModelRequest {
                    segment,
                    version: 0,
                }))
                .await
                .map_err(|e| remote.failed("GetScoringModel", e))?
                .into_inner()
                .model
                .unwrap_or_default();
            say!("{}", json::print("retain.v1.ScoringModel", &model)?);
        }
        ModelAction::Put { file, rescore } => {
            let model: v1::ScoringModel = read_json("retain.v1.ScoringModel", &file)?;
            let reply = health
                .put_scoring_model(remote.request(v1::PutScoringModelRequest {
                    model: Some(model),
                    rescore,
                }))
                .await
                .map_err(|e| remote.failed("PutScoringModel", e))?
                .into_inner();
            say!(
                "{}",
                json::print("retain.v1.PutScoringModelResponse", &reply)?
            );
        }
        ModelAction::Preview { file, accounts } => {
            let model: v1::ScoringModel = read_json("retain.v1.ScoringModel", &file)?;
            let reply = health
                .preview_scoring_model(remote.request(v1::PreviewScoringModelRequest {
                    model: Some(model),
                    account_ids: accounts,
                }))
                .await
                .map_err(|e| remote.failed("PreviewScoringModel", e))?
                .into_inner();
            say!(
                "{}",
                json::print("retain.v1.PreviewScoringModelResponse", &reply)?
            );
        }
    }
    Ok(())
}

/// `retain policy …`.
pub(crate) async fn policy(remote: &client::Remote, action: PolicyAction) -> anyhow::Result<()> {
    let mut notification =
        v1::notification_service_client::NotificationServiceClient::new(remote.channel.clone());
    match action {
        PolicyAction::Get { segment } => {
            let policy = notification
                .get_routing_policy(remote.request(v1::GetRoutingPolicyRequest { segment }))
                .await
                .map_err(|e| remote.failed("GetRoutingPolicy", e))?
                .into_inner()
                .policy
                .unwrap_or_default();
            say!("{}", json::print("retain.v1.RoutingPolicy", &policy)?);
        }
        PolicyAction::Put { file } => {
            let policy: v1::RoutingPolicy = read_json("retain.v1.RoutingPolicy", &file)?;
            let stored = notification
                .put_routing_policy(remote.request(v1::PutRoutingPolicyRequest {
                    policy: Some(policy),
                }))
                .await
                .map_err(|e| remote.failed("PutRoutingPolicy", e))?
                .into_inner()
                .policy
                .unwrap_or_default();
            say!("stored as version {}", stored.version);
        }
    }
    Ok(())
}
