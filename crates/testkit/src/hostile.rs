//! Hostile-input corpora: a table of cases, each a request (well-formed
//! or raw bytes) and what the service must answer, run against a spawned
//! service, checking after every case that the database did not change.
//!
//! A service's corpus is data: build a `Vec<Case>`, then
//! [`run`] it against a [`TestApp`] with a [`State`] reader. Every case is
//! run, and the test fails once at the end listing every case that did not
//! hold, so one run shows the whole picture.
//!
//! Requests travel as bytes through [`RawCodec`] on a plain
//! `tonic::client::Grpc`, so a case can send what no generated client
//! would: garbage, invalid UTF-8 in a string field, wrong wire types,
//! truncated messages, deeply nested groups, frames over the limit. The
//! [`malformed`] helpers build such bytes.
//!
//! ```text
//! let cases = vec![
//!     Case::unary("empty batch", INGEST, WRITER, &batch(vec![]), Expect::status(Code::InvalidArgument, "signals")),
//!     Case::raw("garbage", INGEST, WRITER, vec![0xff; 8], Expect::code(Code::InvalidArgument)),
//! ];
//! hostile::run(&app, cases, hostile::tables).await;
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use prost::bytes::{Buf, BufMut};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::app::TestApp;
use crate::tokens::with_token;

/// A gRPC codec that sends `Vec<u8>` as they are and hands back each
/// reply's bytes undecoded: the raw channel hostile cases travel on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

/// Judges the replies of a call that ended with OK (`Err` says why not).
pub type Check = Arc<dyn Fn(&[Vec<u8>]) -> Result<(), String> + Send + Sync>;

/// What a case must get back.
#[derive(Clone)]
pub enum Expect {
    /// The call fails. `after`: replies received first (a stream's batches
    /// answered before the bad one; 0 for a unary call). `code`: the status
    /// (`None`: any status but OK). `field`: named by the message or by a
    /// `BadRequest` field violation (`None`: no field to name).
    Fails {
        /// Replies before the error.
        after: usize,
        /// The status code, or any error.
        code: Option<Code>,
        /// What the error must name.
        field: Option<String>,
    },
    /// The call succeeds and `check` accepts its replies.
    Answers(Check),
    /// The call fails after `after` replies and `check` accepts the status
    /// (for what [`Expect::Fails`] cannot say, e.g. "exactly one
    /// violation").
    FailsWith {
        /// Replies before the error.
        after: usize,
        /// Judges the status.
        check: StatusCheck,
    },
}

/// Judges the status a call failed with (`Err` says why it is wrong).
pub type StatusCheck = Arc<dyn Fn(&Status) -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fails { after, code, field } => f
                .debug_struct("Fails")
                .field("after", after)
                .field("code", code)
                .field("field", field)
                .finish(),
            Self::Answers(_) => f.write_str("Answers(..)"),
            Self::FailsWith { after, .. } => write!(f, "FailsWith {{ after: {after}, .. }}"),
        }
    }
}

impl Expect {
    /// Fails with `code`, naming `field`.
    pub fn status(code: Code, field: &str) -> Self {
        Self::Fails {
            after: 0,
            code: Some(code),
            field: Some(field.to_owned()),
        }
    }

    /// Fails with `code`; no field to name (garbage bytes, a size limit).
    pub fn code(code: Code) -> Self {
        Self::Fails {
            after: 0,
            code: Some(code),
            field: None,
        }
    }

    /// A stream that answers `after` batches, then fails with `code`
    /// naming `field`.
    pub fn status_after(after: usize, code: Code, field: &str) -> Self {
        Self::Fails {
            after,
            code: Some(code),
            field: Some(field.to_owned()),
        }
    }

    /// A stream that answers `after` batches, then fails with any status
    /// but OK.
    pub fn error_after(after: usize) -> Self {
        Self::Fails {
            after,
            code: None,
            field: None,
        }
    }

    /// Fails (after no reply), and `check` accepts the status.
    pub fn fails_with(
        check: impl Fn(&Status) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self::FailsWith {
            after: 0,
            check: Arc::new(check),
        }
    }

    /// Succeeds, and `check` accepts the replies.
    pub fn answers(
        check: impl Fn(&[Vec<u8>]) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self::Answers(Arc::new(check))
    }
}

/// One hostile request and what it must get.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique, says what is hostile about it.
    pub name: String,
    /// The gRPC method path, `/package.Service/Method`.
    pub method: &'static str,
    /// Bearer token; `None` sends none.
    pub token: Option<&'static str>,
    /// The request message's bytes: one for a unary call, any number of
    /// frames for a client stream.
    pub frames: Vec<Vec<u8>>,
    /// Sent as a client stream (`frames` one message each).
    pub streaming: bool,
    /// What the service must answer.
    pub expect: Expect,
}

impl Case {
    /// A unary call carrying a well-formed message.
    pub fn unary(
        name: impl Into<String>,
        method: &'static str,
        token: &'static str,
        msg: &impl prost::Message,
        expect: Expect,
    ) -> Self {
        Self::raw(name, method, token, msg.encode_to_vec(), expect)
    }

    /// A unary call carrying `bytes` as its message.
    pub fn raw(
        name: impl Into<String>,
        method: &'static str,
        token: &'static str,
        bytes: Vec<u8>,
        expect: Expect,
    ) -> Self {
        Self {
            name: name.into(),
            method,
            token: Some(token),
            frames: vec![bytes],
            streaming: false,
            expect,
        }
    }

    /// A client-streaming call carrying `frames`, one message each.
    pub fn stream(
        name: impl Into<String>,
        method: &'static str,
        token: &'static str,
        frames: Vec<Vec<u8>>,
        expect: Expect,
    ) -> Self {
        Self {
            name: name.into(),
            method,
            token: Some(token),
            frames,
            streaming: true,
            expect,
        }
    }

    /// The same case sent without credentials.
    pub fn without_token(mut self) -> Self {
        self.token = None;
        self
    }
}

/// Reads what a case must leave unchanged, as comparable text.
pub type State = for<'a> fn(&'a TestApp) -> Pin<Box<dyn Future<Output = String> + Send + 'a>>;

/// The row count of every table of the database (any service's state,
/// without knowing its tables; updates in place need a reader of their
/// own next to it).
pub fn tables(app: &TestApp) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
    Box::pin(async move {
        let conn = &app.db.conn;
        let backend = conn.get_database_backend();
        let list = match backend {
            DatabaseBackend::Postgres => {
                "SELECT CAST(tablename AS TEXT) FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
            }
            _ => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
            }
        };
        let names: Vec<String> = conn
            .query_all_raw(Statement::from_string(backend, list.to_owned()))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        let mut out = String::new();
        for name in names {
            let n = app
                .scalar(&format!("SELECT COUNT(*) FROM \"{name}\""))
                .await;
            out.push_str(&format!("{name}={n} "));
        }
        out
    })
}

/// How long one case may take before it counts as hung.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends one case on `app`'s channel through [`RawCodec`]: the replies
/// received, and how the call ended (`Ok(())` or its status).
pub async fn send(app: &TestApp, case: &Case) -> (Vec<Vec<u8>>, Result<(), Status>) {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone())
        .max_encoding_message_size(usize::MAX)
        // A default client's receive limit: every reply must fit it.
        .max_decoding_message_size(4 << 20);
    if let Err(e) = grpc.ready().await {
        return (
            Vec::new(),
            Err(Status::unknown(format!("channel not ready: {e}"))),
        );
    }
    let path = PathAndQuery::from_static(case.method);
    if !case.streaming {
        let body = case.frames.first().cloned().unwrap_or_default();
        return match grpc.unary(request(case.token, body), path, RawCodec).await {
            Ok(r) => (vec![r.into_inner()], Ok(())),
            Err(s) => (Vec::new(), Err(s)),
        };
    }
    let frames = tonic::codegen::tokio_stream::iter(case.frames.clone());
    let mut inbound = match grpc
        .streaming(request(case.token, frames), path, RawCodec)
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return (Vec::new(), Err(s)),
    };
    let mut replies = Vec::new();
    loop {
        match inbound.message().await {
            Ok(Some(m)) => replies.push(m),
            Ok(None) => return (replies, Ok(())),
            Err(s) => return (replies, Err(s)),
        }
    }
}

/// `body` as a request carrying `token`, if any.
fn request<T>(token: Option<&str>, body: T) -> Request<T> {
    match token {
        Some(token) => with_token(token, body),
        None => Request::new(body),
    }
}

/// Whether `status` names `field`: in its message, or as (part of) a
/// `BadRequest` field violation's path.
pub fn names(status: &Status, field: &str) -> bool {
    status.message().contains(field)
        || status.get_details_bad_request().is_some_and(|b| {
            b.field_violations
                .iter()
                .any(|v| v.field.contains(field) || v.description.contains(field))
        })
}

/// Why the outcome of `case` is not what it expects, if it is not.
pub fn judge(case: &Case, replies: &[Vec<u8>], end: &Result<(), Status>) -> Option<String> {
    match (&case.expect, end) {
        (Expect::Answers(check), Ok(())) => check(replies).err(),
        (Expect::Answers(_), Err(s)) => Some(format!("expected an answer, got {}", show(s))),
        (Expect::FailsWith { after, .. }, Ok(())) => Some(format!(
            "expected an error after {after} replies, the call ended OK after {} replies",
            replies.len()
        )),
        (Expect::FailsWith { after, check }, Err(s)) => {
            let mut why = Vec::new();
            if replies.len() != *after {
                why.push(format!(
                    "{} replies before the error, expected {after}",
                    replies.len()
                ));
            }
            if let Err(e) = check(s) {
                why.push(e);
            }
            (!why.is_empty()).then(|| format!("{}: {}", why.join("; "), show(s)))
        }
        (Expect::Fails { after, code, .. }, Ok(())) => Some(format!(
            "expected {} after {after} replies, the call ended OK after {} replies",
            code.map_or("an error".to_owned(), |c| format!("{c:?}")),
            replies.len()
        )),
        (Expect::Fails { after, code, field }, Err(s)) => {
            let mut why = Vec::new();
            if replies.len() != *after {
                why.push(format!(
                    "{} replies before the error, expected {after}",
                    replies.len()
                ));
            }
            if let Some(code) = code
                && s.code() != *code
            {
                why.push(format!("code {:?}, expected {code:?}", s.code()));
            }
            if let Some(field) = field
                && !names(s, field)
            {
                why.push(format!("does not name {field:?}"));
            }
            (!why.is_empty()).then(|| format!("{}: {}", why.join("; "), show(s)))
        }
    }
}

/// A status as a line: code, message, field violations.
pub fn show(s: &Status) -> String {
    let violations: Vec<String> = s
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect()
        })
        .unwrap_or_default();
    let mut message = s.message().to_owned();
    if message.len() > 300 {
        let mut end = 300;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    format!("{:?} {message:?} {violations:?}", s.code())
}

/// Runs every case on `app` in order and returns one line per case that
/// did not hold: a wrong answer, or a change of `state` (read before and
/// after each case). Names must be unique.
pub async fn failures(app: &TestApp, cases: &[Case], state: State) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for case in cases {
        assert!(
            seen.insert(case.name.as_str()),
            "two cases named {:?}",
            case.name
        );
        let before = state(app).await;
        let (replies, end) = match tokio::time::timeout(CASE_TIMEOUT, send(app, case)).await {
            Ok(r) => r,
            Err(_) => {
                out.push(format!("{}: no answer within {CASE_TIMEOUT:?}", case.name));
                continue;
            }
        };
        let mut why: Vec<String> = judge(case, &replies, &end).into_iter().collect();
        let after = state(app).await;
        if after != before {
            why.push(format!(
                "state changed:\n    before {before}\n    after  {after}"
            ));
        }
        if !why.is_empty() {
            out.push(format!("{}: {}", case.name, why.join("; ")));
        }
    }
    out
}

/// [`failures`], then fails the test listing every case that did not hold.
pub async fn run(app: &TestApp, cases: Vec<Case>, state: State) {
    let failed = failures(app, &cases, state).await;
    let backend = format!("{:?}", app.db.conn.get_database_backend());
    eprintln!(
        "hostile corpus on {backend}: {} cases, {} held, {} failed",
        cases.len(),
        cases.len() - failed.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} hostile cases failed on {backend}:\n  {}",
        failed.len(),
        cases.len(),
        failed.join("\n  ")
    );
}

/// Builders of malformed protobuf bytes, each checked to be refused by
/// prost for the message type it targets (so a case cannot silently turn
/// into a valid request).
pub mod malformed {
    use prost::Message;

    /// A field key: field number and wire type.
    pub fn key(field: u32, wire_type: u8) -> Vec<u8> {
        varint((u64::from(field) << 3) | u64::from(wire_type))
    }

    /// `v` as a base-128 varint.
    pub fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A length-delimited field `field` holding `bytes`.
    pub fn len_field(field: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = key(field, 2);
        out.extend(varint(bytes.len() as u64));
        out.extend_from_slice(bytes);
        out
    }

    /// `msg` encoded, with the first occurrence of the ASCII `marker`
    /// (which a string field of `msg` carries) overwritten by bytes that
    /// are not UTF-8 (same length, so every length prefix stays right).
    ///
    /// # Panics
    /// If `marker` is not in the encoding or shorter than 2 bytes.
    pub fn invalid_utf8(msg: &impl Message, marker: &str) -> Vec<u8> {
        let mut bytes = msg.encode_to_vec();
        let m = marker.as_bytes();
        assert!(m.len() >= 2, "the marker must be at least 2 bytes");
        let at = bytes
            .windows(m.len())
            .position(|w| w == m)
            .expect("the marker is in the encoding");
        // 0xC3 starts a 2-byte sequence that 0x28 cannot continue; 0xFF
        // never appears in UTF-8.
        bytes[at] = 0xC3;
        bytes[at + 1] = 0x28;
        for b in &mut bytes[at + 2..at + m.len()] {
            *b = 0xFF;
        }
        bytes
    }

    /// `depth` nested start-group keys of field `field`, never closed.
    pub fn nested_groups(field: u32, depth: usize) -> Vec<u8> {
        key(field, 3).repeat(depth)
    }

    /// Whether prost refuses `bytes` as an `M`.
    pub fn refused<M: Message + Default>(bytes: &[u8]) -> bool {
        M::decode(bytes).is_err()
    }

    /// `bytes`, after checking that prost refuses them as an `M`.
    ///
    /// # Panics
    /// If prost decodes them: the case would not be malformed.
    pub fn checked<M: Message + Default>(what: &str, bytes: Vec<u8>) -> Vec<u8> {
        assert!(
            refused::<M>(&bytes),
            "{what}: prost decodes these bytes as {}, so they are not malformed",
            std::any::type_name::<M>()
        );
        bytes
    }

    /// Every prefix of `bytes` cut at `cuts` (fractions of its length,
    /// and the last byte) that prost refuses as an `M`, with its length.
    pub fn truncations<M: Message + Default>(bytes: &[u8]) -> Vec<(usize, Vec<u8>)> {
        let n = bytes.len();
        let mut at: Vec<usize> = [n - 1, n - 2, n * 3 / 4, n / 2, n / 3, n / 4, 3, 2, 1]
            .into_iter()
            .filter(|&k| k > 0 && k < n)
            .collect();
        at.sort_unstable();
        at.dedup();
        at.into_iter()
            .map(|k| (k, bytes[..k].to_vec()))
            .filter(|(_, b)| refused::<M>(b))
            .collect()
    }
}
