//! One trace from a client's `IngestSignals` call through the bus to the
//! health score and the CSM task it caused, across four separate
//! processes on one PostgreSQL: each exports its spans over OTLP to a
//! receiver this test runs, and the spans of the signal's whole journey
//! share the client's trace id.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_testkit::{TestDatabase, batch, binary, eventually, now, signal, ts};

/// A span as received: trace id (hex), name, the exporting service, and
/// its attributes as text.
#[derive(Debug, Clone)]
struct Received {
    trace: String,
    name: String,
    service: String,
    attributes: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| {
            use opentelemetry_proto::tonic::common::v1::any_value::Value;
            match v.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            }
        };
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        trace: span.trace_id.iter().map(|b| format!("{b:02x}")).collect(),
                        name: span.name.clone(),
                        service: service.clone(),
                        attributes: span
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(&a.value)))
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test]
async fn one_trace_runs_from_the_call_through_the_bus_to_the_score_and_the_task() {
    let test = "one_trace_runs_from_the_call_through_the_bus_to_the_score_and_the_task";
    let Some(db) = TestDatabase::postgres(test).await else {
        return;
    };
    // The receiver.
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    // Four processes exporting to it.
    let dir = tempfile::tempdir().unwrap();
    let token = "trace-token";
    let config = binary::reference_config(dir.path(), token, &["ingest", "read", "admin", "csm"]);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "otlp_endpoint = \"\"",
        &format!("otlp_endpoint = {otlp:?}"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_retain"))
        .parent()
        .unwrap();
    let Some(processes) = binary::Processes::new(test, bin_dir, dir.path(), &config, &db.url)
    else {
        return;
    };
    let running = processes.start_all().await;

    // The client's call, in its own trace.
    let trace_id = format!(
        "{:032x}",
        u128::from(std::process::id()) << 64 | u128::from(now() as u64)
    );
    let mut request = tonic::Request::new(batch(vec![
        v1::Signal {
            occurred_at: ts(now() - 600),
            ..signal(
                "t-0",
                "traced",
                v1::signal::Body::Account(v1::AccountUpsert {
                    csm_owner_email: Some("ana@vendor.example".into()),
                    ..Default::default()
                }),
            )
        },
        v1::Signal {
            occurred_at: ts(now() - 60),
            ..signal("t-1", "traced", retain_testkit::nps(3))
        },
    ]));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let reply = IngestionServiceClient::new(running[0].channel.clone())
        .ingest_signals(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 2);

    // Every service's part of the journey arrives under that trace id.
    let ours = |c: &Collector| -> Vec<Received> {
        c.0.lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace == trace_id)
            .cloned()
            .collect()
    };
    let handled = |spans: &[Received], service: &str, topic: &str| {
        spans.iter().any(|s| {
            s.service == service
                && s.name == "bus.handle"
                && s.attributes.iter().any(|(k, v)| k == "topic" && v == topic)
        })
    };
    let spans = eventually("the journey's spans", Duration::from_secs(60), || async {
        let spans = ours(&collector);
        let whole = spans
            .iter()
            .any(|s| s.service == "retain-ingestion" && s.name == "grpc.request")
            && handled(&spans, "retain-metrics", "signals.recorded")
            && handled(&spans, "retain-notification", "signals.recorded")
            && handled(&spans, "retain-health", "account.metrics");
        whole.then_some(spans)
    })
    .await;
    // The call's own span is the child of the client's.
    assert!(spans.iter().any(|s| {
        s.name == "grpc.request"
            && s.attributes
                .iter()
                .any(|(k, v)| k == "rpc.method" && v == "/retain.v1.IngestionService/IngestSignals")
    }));
    for r in running {
        assert!(r.stop().await.success());
    }
}
