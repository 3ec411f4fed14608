//! Bytes as an `IngestSignalsRequest`, as the ingestion service receives
//! them: decode, then convert and validate every signal under the batch's
//! mode. Nothing may panic, and every valid signal keeps the invariants
//! of `retain_fuzz::invariants`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use retain_domain::signal::Mode;
use retain_proto::{convert, v1};

fuzz_target!(|data: &[u8]| {
    let Ok(req) = v1::IngestSignalsRequest::decode(data) else {
        return;
    };
    let mode = convert::mode(req.mode).unwrap_or(Mode::Live);
    let checklist = retain_fuzz::checklist();
    let rules = retain_fuzz::rules(mode, &checklist);
    for wire in &req.signals {
        retain_fuzz::check(wire, &rules);
    }
});
