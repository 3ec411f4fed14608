//! `retain ingest FILE`: signals from a JSON Lines file — one signal per
//! line in protobuf JSON, as `grpcurl` writes them — or a CSV file (`.csv`)
//! whose header names each column's field by its path in the signal
//! (`event_id,account_id,occurred_at,survey.kind,survey.score`; an empty
//! cell is an unset field), sent in batches with a progress bar. Every line that cannot be read, and every signal the
//! server rejects, goes to `FILE.rejected` with its line number and the
//! reason, so the file can be fixed and sent again (what was accepted is
//! recognised as a duplicate then, never counted twice).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;

use crate::client::Remote;
use crate::json;

/// What one run did.
#[derive(Debug, Default)]
struct Tally {
    accepted: i64,
    duplicates: i64,
    rejected: Vec<serde_json::Value>,
}

/// Sends `file`'s signals in batches of `batch`, LIVE or BACKFILL.
pub async fn run(
    remote: &Remote,
    file: &Path,
    mode: v1::IngestMode,
    batch: usize,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let owned: Vec<(usize, String)> = if csv {
        csv_as_json_lines(&text)?
    } else {
        text.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim().to_owned()))
            .filter(|(_, l)| !l.is_empty())
            .collect()
    };
    let lines: Vec<(usize, &str)> = owned.iter().map(|(n, l)| (*n, l.as_str())).collect();
    let bar = ProgressBar::new(lines.len() as u64).with_style(ProgressStyle::with_template(
        "  {bar:40} {pos}/{len} lines  {per_sec}",
    )?);
    let mut client =
        IngestionServiceClient::new(remote.channel.clone()).max_encoding_message_size(64 << 20);
    let mut tally = Tally::default();
    for chunk in lines.chunks(batch.max(1)) {
        let mut sent: Vec<(usize, &str)> = Vec::with_capacity(chunk.len());
        let mut signals = Vec::with_capacity(chunk.len());
        for &(n, line) in chunk {
            match json::parse::<v1::Signal>("retain.v1.Signal", line) {
                Ok(signal) => {
                    sent.push((n, line));
                    signals.push(signal);
                }
                Err(e) => tally
                    .rejected
                    .push(rejection(n, &format!("not a signal: {e}"), line)),
            }
        }
        if !signals.is_empty() {
            let reply = client
                .ingest_signals(remote.request(v1::IngestSignalsRequest {
                    signals,
                    mode: mode as i32,
                    ..Default::default()
                }))
                .await
                .map_err(|e| {
                    let first = sent.first().map_or(0, |(n, _)| *n);
                    remote.failed(&format!("IngestSignals (lines {first}…)"), e)
                })?
                .into_inner();
            tally.accepted += i64::from(reply.accepted);
            tally.duplicates += i64::from(reply.duplicates);
            for r in reply.results {
                if r.outcome != v1::SignalOutcome::Rejected as i32 {
                    continue;
                }
                let Some(&(n, line)) = usize::try_from(r.index).ok().and_then(|i| sent.get(i))
                else {
                    continue;
                };
                let reasons: Vec<String> = r
                    .violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                tally.rejected.push(rejection(n, &reasons.join("; "), line));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    say!(
        "{}: {} accepted, {} already known, {} rejected",
        file.display(),
        tally.accepted,
        tally.duplicates,
        tally.rejected.len()
    );
    if tally.rejected.is_empty() {
        return Ok(());
    }
    tally
        .rejected
        .sort_by_key(|r| r.get("line").and_then(serde_json::Value::as_u64));
    let out = rejected_path(file);
    let body: Vec<String> = tally.rejected.iter().map(ToString::to_string).collect();
    std::fs::write(&out, body.join("\n") + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    anyhow::bail!(
        "{} lines rejected, each with its line number and reason in {}",
        tally.rejected.len(),
        out.display()
    )
}

/// Each CSV row as one JSON object, numbered by its line in the file: the
/// header's dotted paths become nested fields; `true`/`false` become
/// booleans, other cells stay strings (protobuf JSON reads numbers,
/// timestamps and enum names from strings).
fn csv_as_json_lines(text: &str) -> anyhow::Result<Vec<(usize, String)>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .context("reading the CSV header")?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.context("reading a CSV row")?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let mut object = serde_json::Map::new();
        for (path, cell) in header.iter().zip(record.iter()) {
            if cell.is_empty() {
                continue;
            }
            let value = match cell {
                "true" => serde_json::Value::Bool(true),
                "false" => serde_json::Value::Bool(false),
                _ => serde_json::Value::String(cell.to_owned()),
            };
            let mut at = &mut object;
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    at.insert(part.to_owned(), value.clone());
                } else {
                    let next = at
                        .entry(part.to_owned())
                        .or_insert_with(|| serde_json::Value::Object(Default::default()));
                    match next {
                        serde_json::Value::Object(map) => at = map,
                        _ => anyhow::bail!("CSV header: {path} nests under a plain field"),
                    }
                }
            }
        }
        out.push((line, serde_json::Value::Object(object).to_string()));
    }
    Ok(out)
}

/// `FILE.rejected`.
fn rejected_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".rejected");
    PathBuf::from(name)
}

fn rejection(line: usize, reason: &str, input: &str) -> serde_json::Value {
    serde_json::json!({ "line": line, "reason": reason, "input": input })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use retain_proto::v1;

    #[test]
    fn a_csv_row_becomes_a_signal() {
        let rows = super::csv_as_json_lines(
            "event_id,account_id,occurred_at,survey.kind,survey.score,survey.user_id,subscription.add_on\n\
             e-1,acme,2026-11-01T10:00:00Z,SURVEY_KIND_NPS,9,u-1,\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 2, "numbered by the file's line");
        let s: v1::Signal = crate::json::parse("retain.v1.Signal", &rows[0].1).unwrap();
        let Some(v1::signal::Body::Survey(a)) = s.body else {
            panic!("{}", rows[0].1)
        };
        assert_eq!((a.score, a.user_id.as_str()), (9, "u-1"));
    }
}
