//! Bearer tokens for tests: tenant `acme` with every combination a test
//! needs, and tenant `globex` to check isolation.

use retain_runtime::{Authenticator, Principal, Role};
use tonic::Request;
use tonic::metadata::MetadataValue;

/// `acme`: ingest + read.
pub const WRITER: &str = "acme-writer";
/// `acme`: read only.
pub const READER: &str = "acme-reader";
/// `acme`: ingest only.
pub const INGEST_ONLY: &str = "acme-ingest-only";
/// `globex`: ingest + read.
pub const GLOBEX: &str = "globex-writer";
/// `acme`: admin + read (models, rescoring).
pub const ADMIN: &str = "acme-admin";

/// `acme`: csm + read (task actions, snoozes).
pub const CSM: &str = "acme-csm";
/// Tenant `acme`, roles `csm` and `read`, the token of one CSM,
/// `ana@vendor.io`: it claims tasks for her only.
pub const CSM_ANA: &str = "acme-csm-ana";

/// An authenticator that knows the tokens above.
pub fn authenticator() -> Authenticator {
    let mut auth = Authenticator::default();
    let p = |tenant: &str, roles: Vec<Role>| Principal {
        tenant: retain_domain::TenantId::parse(tenant).unwrap(),
        roles,
        name: String::new(),
        email: None,
    };
    auth.insert(WRITER, p("acme", vec![Role::Ingest, Role::Read]));
    auth.insert(READER, p("acme", vec![Role::Read]));
    auth.insert(INGEST_ONLY, p("acme", vec![Role::Ingest]));
    auth.insert(GLOBEX, p("globex", vec![Role::Ingest, Role::Read]));
    auth.insert(ADMIN, p("acme", vec![Role::Admin, Role::Read]));
    auth.insert(CSM, p("acme", vec![Role::Csm, Role::Read]));
    auth.insert(
        CSM_ANA,
        Principal {
            email: Some("ana@vendor.io".into()),
            ..p("acme", vec![Role::Csm, Role::Read])
        },
    );
    auth
}

/// `msg` as a request carrying `authorization: Bearer token`.
pub fn with_token<T>(token: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}
