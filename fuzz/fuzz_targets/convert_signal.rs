//! The conversion layer alone: bytes as one `v1::Signal`, converted to the
//! domain (`retain_proto::convert::signal_from_proto`) and, when that
//! succeeds, validated in both modes. A valid signal's kind code must read
//! back through `SignalKind::from_code`, and the other invariants of
//! `retain_fuzz::invariants` must hold. The timestamp and lifecycle
//! conversions must agree with each other.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use retain_domain::signal::Mode;
use retain_proto::{convert, v1};

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = v1::Signal::decode(data) else {
        return;
    };
    for t in retain_fuzz::times(&wire) {
        // A convertible timestamp round-trips at microsecond precision.
        if let Some(ts) = convert::timestamp(t) {
            let back = convert::from_micros(ts.micros());
            assert_eq!(convert::micros(&back), ts.micros());
        }
    }
    if let Some(v1::signal::Body::Account(a)) = &wire.body {
        if let Some(l) = convert::lifecycle_from_proto(a.lifecycle) {
            assert_eq!(convert::lifecycle_to_proto(Some(l)) as i32, a.lifecycle);
        }
    }
    let Ok(raw) = convert::signal_from_proto(&wire) else {
        return;
    };
    // Conversion is a function of its input.
    assert_eq!(convert::signal_from_proto(&wire).ok(), Some(raw));
    let checklist = retain_fuzz::checklist();
    for mode in [Mode::Live, Mode::Backfill] {
        let rules = retain_fuzz::rules(mode, &checklist);
        retain_fuzz::check(&wire, &rules);
    }
});
