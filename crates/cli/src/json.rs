//! Protobuf JSON (the canonical mapping `grpcurl` also speaks) for the
//! client commands: files of signals, models and policies in, `--json`
//! answers out — through the API's own descriptors, so every message of
//! `proto/` reads and prints without code of its own.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(retain_proto::FILE_DESCRIPTOR_SET)
            .expect("the built-in descriptor set decodes")
    })
}

fn descriptor(name: &str) -> anyhow::Result<MessageDescriptor> {
    pool()
        .get_message_by_name(name)
        .ok_or_else(|| anyhow::anyhow!("no message {name} in the API"))
}

/// `text` (one JSON object) as the message `name` (`retain.v1.Signal`).
pub fn parse<M: prost::Message + Default>(name: &str, text: &str) -> anyhow::Result<M> {
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic = DynamicMessage::deserialize(descriptor(name)?, &mut de)?;
    de.end()?;
    Ok(dynamic.transcode_to::<M>()?)
}

/// `message` (of type `name`) as pretty JSON, with field names as in the
/// proto files and enum values by name.
pub fn print<M: prost::Message>(name: &str, message: &M) -> anyhow::Result<String> {
    let dynamic = DynamicMessage::decode(descriptor(name)?, message.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::pretty(&mut out);
    dynamic.serialize_with_options(&mut ser, &options)?;
    Ok(String::from_utf8(out)?)
}

/// `message` (of type `name`) as a JSON value, as [`print`] writes it.
pub fn value<M: prost::Message>(name: &str, message: &M) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::from_str(&print(name, message)?)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use retain_proto::v1;

    #[test]
    fn a_signal_reads_from_json_and_prints_back() {
        let s: v1::Signal = super::parse(
            "retain.v1.Signal",
            r#"{"event_id": "e-1", "account_id": "acme", "occurred_at": "2026-11-01T10:00:00Z",
                "survey": {"kind": "SURVEY_KIND_NPS", "score": 9, "user_id": "u-1"}}"#,
        )
        .unwrap();
        assert_eq!(s.event_id, "e-1");
        assert_eq!(s.occurred_at.unwrap().seconds, 1_793_527_200);
        let Some(v1::signal::Body::Survey(a)) = &s.body else {
            panic!("{s:?}")
        };
        assert_eq!((a.score, a.kind), (9, v1::SurveyKind::Nps as i32));
        let printed = super::print("retain.v1.Signal", &s).unwrap();
        assert!(printed.contains("\"SURVEY_KIND_NPS\""), "{printed}");
        let err = super::parse::<v1::Signal>("retain.v1.Signal", r#"{"event": 1}"#).unwrap_err();
        assert!(err.to_string().contains("event"), "{err}");
    }
}
