//! Retain's metrics service: `MetricsService` over gRPC.
//!
//! Today it keeps every account's metric snapshot — the inputs the health
//! model scores — current: its worker consumes `signals.recorded`
//! ([`recompute`]), recomputes the snapshot of each account a message
//! names from the account's stored signals with
//! `retain_domain::snapshot::account_snapshot`, stores it, and publishes
//! `account.metrics` for health in the same transaction.
//! `GetAccountMetrics` reads it. `GetMrrBridge` computes the bridge of a
//! period over the accounts a filter selects, `GetPortfolioMetrics` every
//! KPI of it (`portfolio`, `kpis`), `GetScorecard` the KPIs a strategy or
//! journey stage puts first (`scorecard`), and `GetKpiSeries` one KPI per
//! day, week, month, quarter or year of a range. A KPI query the monthly
//! cells cannot answer reads the signals a page of accounts at a time
//! (`portfolio::tallies`): its memory is bounded by a page, and at most
//! [`HEAVY_QUERIES`] run at once per replica, counted before they read.

mod heavy;
mod kpis;
mod portfolio;
mod recompute;
mod rollups;
mod scorecard;
mod settings;
mod sql;
pub mod topics;

use std::sync::Arc;
use std::time::Duration;

use retain_bus::{Consumer, groups};
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_proto::v1;
use retain_proto::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use retain_runtime::auth::{Principal, Role};
use retain_runtime::error::Error;
use retain_runtime::{Clock, Context, Service, Services, Workers};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

pub use crate::recompute::{Computed, Reading, Recompute};
pub use crate::settings::{MetricsSettings, MetricsTenantKeys, Tenant, Tenants, tenants};

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn get_account_metrics(
        &self,
        request: Request<v1::GetAccountMetricsRequest>,
    ) -> Result<Response<v1::GetAccountMetricsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let account = &request.get_ref().account_id;
        if let Err(e) = retain_domain::AccountId::parse(account.clone()) {
            return Err(Error::invalid("account_id", e.to_string()).into());
        }
        let snapshot = sql::snapshot(&self.db, principal.tenant.as_str(), account)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "metrics of account {}",
                    retain_domain::validation::quote(account)
                ))
            })?;
        Ok(Response::new(v1::GetAccountMetricsResponse {
            snapshot: Some(snapshot),
        }))
    }

    async fn get_portfolio_metrics(
        &self,
        request: Request<v1::GetPortfolioMetricsRequest>,
    ) -> Result<Response<v1::GetPortfolioMetricsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let period = self.selection(req.period.as_ref(), req.filter.as_ref())?;
        let metrics = self
            .portfolio(principal.tenant.as_str(), period, req.filter.as_ref())
            .await?;
        Ok(Response::new(metrics))
    }

    async fn get_mrr_bridge(
        &self,
        request: Request<v1::GetMrrBridgeRequest>,
    ) -> Result<Response<v1::GetMrrBridgeResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let period = self.selection(req.period.as_ref(), req.filter.as_ref())?;
        let tenant = principal.tenant.as_str();
        let settings = self.tenants.of(tenant);
        let now = self.clock.now();
        let bridge = self
            .tally(tenant, period, req.filter.as_ref(), now)
            .await?
            .total
            .revenue
            .kpis(period, settings.base_currency)
            .map_err(|e| Error::Internal(format!("revenue KPIs: {e}")))?
            .bridge;
        Ok(Response::new(portfolio::bridge_to_proto(
            period,
            &bridge,
            settings.base_currency,
        )))
    }

    async fn get_scorecard(
        &self,
        request: Request<v1::GetScorecardRequest>,
    ) -> Result<Response<v1::GetScorecardResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let headline = scorecard::headline(req.lens.as_ref());
        let period = self.selection(req.period.as_ref(), req.filter.as_ref());
        let (headline, period) = both(headline, period)?;
        let metrics = self
            .portfolio(principal.tenant.as_str(), period, req.filter.as_ref())
            .await?;
        Ok(Response::new(scorecard::build(&headline, metrics)))
    }

    async fn get_kpi_series(
        &self,
        request: Request<v1::GetKpiSeriesRequest>,
    ) -> Result<Response<v1::GetKpiSeriesResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let kpi = scorecard::kpi(req.kpi);
        let granularity = scorecard::granularity(req.granularity);
        let range = portfolio::period("range", req.range.as_ref(), self.clock.now());
        let filter = portfolio::check_filter(req.filter.as_ref());
        let ((kpi, granularity), (range, ())) = both(both(kpi, granularity), both(range, filter))?;
        let buckets = portfolio::buckets(range, granularity, MAX_SERIES_POINTS)?;
        let tenant = principal.tenant.as_str();
        let settings = self.tenants.of(tenant);
        let now = self.clock.now();
        let point = move |bucket: retain_domain::Period,
                          metrics: v1::GetPortfolioMetricsResponse| {
            v1::KpiPoint {
                period: Some(kpis::period_to_proto(bucket)),
                value: metrics
                    .kpis
                    .into_iter()
                    .find(|e| e.kpi == kpi as i32)
                    .and_then(|e| e.value),
            }
        };
        // Finished months from the monthly rollups; the other buckets from
        // the signals, read once for all of them.
        let mut points: Vec<Option<v1::KpiPoint>> = Vec::with_capacity(buckets.len());
        let mut rest = Vec::new();
        for (i, bucket) in buckets.into_iter().enumerate() {
            let filter = req.filter.as_ref();
            match rollups::tally(
                &self.db,
                &self.heavy,
                (tenant, settings),
                bucket,
                filter,
                now,
            )
            .await?
            {
                Some(tally) => {
                    let basis = kpis::basis(bucket, now, settings);
                    let filtered = portfolio::is_filtered(filter);
                    points.push(Some(point(
                        bucket,
                        kpis::portfolio(&tally, &basis, filtered)?,
                    )));
                }
                None => {
                    points.push(None);
                    rest.push((i, bucket));
                }
            }
        }
        if !rest.is_empty() {
            let _permit = self.heavy(tenant).await?;
            let periods: Vec<retain_domain::Period> = rest.iter().map(|(_, b)| *b).collect();
            let filter = req.filter.as_ref();
            let tallies = portfolio::tallies(
                &self.db,
                tenant,
                settings,
                filter,
                (&periods, now),
                self.page,
            )
            .await?;
            for ((i, bucket), tally) in rest.into_iter().zip(tallies) {
                let basis = kpis::basis(bucket, now, settings);
                let metrics = kpis::portfolio(&tally, &basis, portfolio::is_filtered(filter))?;
                points[i] = Some(point(bucket, metrics));
            }
        }
        let points = points.into_iter().flatten().collect();
        Ok(Response::new(v1::GetKpiSeriesResponse { points }))
    }
}

impl Metrics {
    /// The period a query asks for (the current calendar month when
    /// absent), with its account filter checked: every violation of both
    /// in one answer.
    fn selection(
        &self,
        period: Option<&v1::Period>,
        filter: Option<&v1::AccountFilter>,
    ) -> Result<retain_domain::Period, Error> {
        let period = portfolio::period("period", period, self.clock.now());
        let (period, ()) = both(period, portfolio::check_filter(filter))?;
        Ok(period)
    }

    /// Every portfolio KPI of `period` over the accounts `filter` selects:
    /// from the monthly cells for a finished month, else from the signals
    /// a page of accounts at a time, inside the heavy-query limit.
    async fn portfolio(
        &self,
        tenant: &str,
        period: retain_domain::Period,
        filter: Option<&v1::AccountFilter>,
    ) -> Result<v1::GetPortfolioMetricsResponse, Error> {
        let settings = self.tenants.of(tenant);
        let now = self.clock.now();
        let tally = self.tally(tenant, period, filter, now).await?;
        let basis = kpis::basis(period, now, settings);
        kpis::portfolio(&tally, &basis, portfolio::is_filtered(filter))
    }

    /// The tally of `period` (as of `now`) over the accounts `filter`
    /// selects: a finished month's stored sums when they are complete,
    /// else summed from the signals a page of accounts at a time, inside
    /// the heavy-query limit.
    async fn tally(
        &self,
        tenant: &str,
        period: retain_domain::Period,
        filter: Option<&v1::AccountFilter>,
        now: retain_domain::Timestamp,
    ) -> Result<kpis::Tally, Error> {
        let settings = self.tenants.of(tenant);
        if let Some(tally) = rollups::tally(
            &self.db,
            &self.heavy,
            (tenant, settings),
            period,
            filter,
            now,
        )
        .await?
        {
            return Ok(tally);
        }
        let _permit = self.heavy(tenant).await?;
        let page = self.page;
        Ok(
            portfolio::tallies(&self.db, tenant, settings, filter, (&[period], now), page)
                .await?
                .remove(0),
        )
    }

    /// A place among the heavy queries the replica runs at once
    /// ([`heavy::HeavyLimit`]), taken before any of the work starts
    /// (reading included) and held until the answer is built.
    async fn heavy(&self, tenant: &str) -> Result<heavy::HeavyPermit, Error> {
        self.heavy.acquire(tenant).await
    }
}

pub use heavy::{HEAVY_QUERIES, HEAVY_QUERIES_PER_TENANT};
pub use portfolio::Page;

/// `GetPortfolioMetrics` of `period` computed from the tenant's signals at
/// query time, never from the monthly rollups: what the service does for a
/// period the rollups do not cover, and the baseline `retain-dataload`
/// measures the rollups against; a `page` of accounts' signals read at
/// once ([`Page`]).
pub async fn portfolio_from_signals(
    db: &DatabaseConnection,
    settings: &crate::settings::Tenant,
    tenant: &str,
    (period, now): (retain_domain::Period, retain_domain::Timestamp),
    page: Page,
) -> Result<v1::GetPortfolioMetricsResponse, Error> {
    let tally = portfolio::tallies(db, tenant, settings, None, (&[period], now), page)
        .await?
        .remove(0);
    kpis::portfolio(&tally, &kpis::basis(period, now, settings), false)
}

/// Most points one `GetKpiSeries` answer holds.
pub const MAX_SERIES_POINTS: usize = 366;

/// Both checks' results, or every violation of both.
fn both<A, B>(a: Result<A, Error>, b: Result<B, Error>) -> Result<(A, B), Error> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::InvalidArgument(mut x)), Err(Error::InvalidArgument(y))) => {
            x.extend(y);
            Err(Error::InvalidArgument(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The metrics service's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    db: DatabaseConnection,
    tenants: Arc<Tenants>,
    clock: Clock,
    heavy: Arc<heavy::HeavyLimit>,
    page: Page,
}

impl Service for Metrics {
    const NAME: &'static str = "retain-metrics";
    const ABOUT: &'static str = "Retain's metrics service: account metric snapshots from ingested signals, for health and dashboards.";
    type Settings = MetricsSettings;
    type TenantKeys = settings::MetricsTenantKeys;

    fn build(ctx: &Context, own: MetricsSettings) -> anyhow::Result<Services> {
        let tenants = Arc::new(settings::tenants(&ctx.tenants)?);
        let page = Page::of(&own);
        let recompute = Recompute {
            db: ctx.db.clone(),
            tenants: tenants.clone(),
            clock: ctx.clock.clone(),
        };
        let mut workers = Workers::new();
        let bus = ctx.bus.clone();
        let consumer_recompute = recompute.clone();
        workers.add("metrics.signals-recorded", move |stop| async move {
            let opts = own.consumer.options(format!(
                "metrics-{}-{}",
                std::process::id(),
                retain_store::now_micros()
            ));
            match Consumer::new(bus, SIGNALS_RECORDED.name(), groups::METRICS, opts).await {
                Ok(consumer) => consumer.run(&consumer_recompute, stop).await,
                // Without its subscription the consumer cannot run: the
                // worker ends, which stops the server (the migrations
                // create the subscription; run `migrate`).
                Err(e) => tracing::error!(error = %e, "metrics consumer cannot start"),
            }
        });
        let (cells_db, cells_every) = (
            ctx.db.clone(),
            Duration::from_millis(own.cells_rebuild_interval_ms),
        );
        workers.add("metrics.monthly-cells", move |stop| async move {
            rollups::keep_cells(cells_db, cells_every, stop).await;
        });
        let refresh = recompute.clone();
        let every = Duration::from_secs(own.refresh_interval_seconds);
        workers.add("metrics.daily-refresh", move |stop| async move {
            refresh.refresh_daily(every, stop).await;
        });
        let metrics = Metrics {
            db: ctx.db.clone(),
            tenants,
            clock: ctx.clock.clone(),
            heavy: Arc::new(heavy::HeavyLimit::new(
                HEAVY_QUERIES,
                HEAVY_QUERIES_PER_TENANT,
            )),
            page,
        };
        Ok(Services::new()
            .with(MetricsServiceServer::new(metrics))
            .with_workers(workers))
    }
}
