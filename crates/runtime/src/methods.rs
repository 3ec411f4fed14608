//! The gRPC methods a Retain server can answer, read once from the API's
//! descriptors (and health's and reflection's): which paths are methods at
//! all (the call metrics label nothing else) and which of Retain's are
//! streams (limited per tenant, [`crate::streams`]).

use std::collections::HashSet;
use std::sync::OnceLock;

struct Methods {
    known: HashSet<String>,
    tenant_streams: HashSet<String>,
}

fn methods() -> &'static Methods {
    static METHODS: OnceLock<Methods> = OnceLock::new();
    METHODS.get_or_init(|| {
        use prost::Message;
        let mut known = HashSet::new();
        let mut tenant_streams = HashSet::new();
        for (set, retain) in [
            (retain_proto::FILE_DESCRIPTOR_SET, true),
            (tonic_health::pb::FILE_DESCRIPTOR_SET, false),
            (tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET, false),
            (tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET, false),
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        let path =
                            format!("/{}.{}/{}", file.package(), service.name(), method.name());
                        if retain && (method.server_streaming() || method.client_streaming()) {
                            tenant_streams.insert(path.clone());
                        }
                        known.insert(path);
                    }
                }
            }
        }
        Methods {
            known,
            tenant_streams,
        }
    })
}

/// `path` itself when it names a method of Retain's API, of
/// `grpc.health.v1` or of server reflection (a static string: no
/// allocation per call).
pub fn known(path: &str) -> Option<&'static str> {
    methods().known.get(path).map(String::as_str)
}

/// Whether `path` names one of Retain's streaming methods (`WatchTasks`,
/// `WatchBandChanges`, `StreamSignals`): calls a tenant may hold open.
pub fn is_tenant_stream(path: &str) -> bool {
    methods().tenant_streams.contains(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retains_streams_are_told_from_its_unary_calls() {
        for stream in [
            "/retain.v1.NotificationService/WatchTasks",
            "/retain.v1.HealthService/WatchBandChanges",
            "/retain.v1.IngestionService/StreamSignals",
        ] {
            assert!(super::is_tenant_stream(stream), "{stream}");
            assert_eq!(super::known(stream), Some(stream));
        }
        for unary in [
            "/retain.v1.IngestionService/IngestSignals",
            "/grpc.health.v1.Health/Watch",
            "/nope",
        ] {
            assert!(!super::is_tenant_stream(unary), "{unary}");
        }
    }
}
