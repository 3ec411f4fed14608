//! Resumable watch streams: a server stream of numbered changes a client
//! resumes from a cursor.
//!
//! The service numbers its changes per tenant in commit order (a counter
//! row taken inside the changing transaction, so numbers become visible in
//! order); the cursor is the number. [`stream`] reads the changes after
//! the last number it saw, polls every `every` while idle, and ends with
//! `UNAVAILABLE` ([`SHUTTING_DOWN`]) when the server starts draining — the
//! client reconnects, to any replica, with its last cursor and misses
//! nothing and sees nothing twice. A read error ends nothing: the stream
//! reports it and the client resumes from its cursor.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::error::Error;

/// The message a stream ends with when the server shuts down.
pub const SHUTTING_DOWN: &str =
    "the server is shutting down; reconnect with the last cursor you received";

/// The cursor for number `seq`: `prefix` then the number, so each stream's
/// cursors are told apart.
pub fn cursor(prefix: char, seq: i64) -> String {
    format!("{prefix}{seq}")
}

/// The number a cursor holds; `None` for anything this stream did not
/// issue.
pub fn parse_cursor(prefix: char, cursor: &str) -> Option<i64> {
    cursor
        .strip_prefix(prefix)?
        .parse()
        .ok()
        .filter(|n| *n >= 0)
}

/// The items `read(after)` returns, from after number `after` on, until
/// `draining` is cancelled. `read` returns the numbers after `after` in
/// order, each with its item when the watcher wants it (`None`: skipped,
/// but the stream moves past it).
pub fn stream<T, R, Fut>(
    after: i64,
    every: Duration,
    draining: CancellationToken,
    read: R,
) -> impl Stream<Item = Result<(i64, T), Status>> + Send
where
    T: Send + 'static,
    R: Fn(i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<(i64, Option<T>)>, Error>> + Send,
{
    let state = Some((after, VecDeque::new(), read));
    futures::stream::unfold(state, move |state| {
        let draining = draining.clone();
        async move {
            let (mut after, mut ready, read) = state?;
            loop {
                if draining.is_cancelled() {
                    return Some((Err(Status::unavailable(SHUTTING_DOWN)), None));
                }
                if let Some(item) = ready.pop_front() {
                    return Some((Ok(item), Some((after, ready, read))));
                }
                match read(after).await {
                    Ok(rows) if rows.is_empty() => {
                        tokio::select! {
                            () = tokio::time::sleep(every) => {}
                            () = draining.cancelled() => {}
                        }
                    }
                    Ok(rows) => {
                        for (seq, item) in rows {
                            after = seq;
                            if let Some(item) = item {
                                ready.push_back((seq, item));
                            }
                        }
                    }
                    Err(e) => return Some((Err(e.into()), Some((after, ready, read)))),
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        assert_eq!(parse_cursor('c', &cursor('c', 42)), Some(42));
        assert_eq!(parse_cursor('c', "42"), None);
        assert_eq!(parse_cursor('c', "c-1"), None);
        assert_eq!(parse_cursor('t', "c7"), None);
    }

    #[tokio::test]
    async fn skipped_numbers_are_passed_and_draining_ends_the_stream() {
        let draining = CancellationToken::new();
        let read = |after: i64| async move {
            // Numbers 1..=3 exist; 2 is not wanted.
            Ok((after + 1..=3)
                .map(|n| (n, (n != 2).then_some(n * 10)))
                .collect::<Vec<_>>())
        };
        let mut s = Box::pin(stream(0, Duration::from_millis(5), draining.clone(), read));
        assert_eq!(s.next().await.unwrap().unwrap(), (1, 10));
        assert_eq!(s.next().await.unwrap().unwrap(), (3, 30));
        draining.cancel();
        let end = s.next().await.unwrap().unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert!(s.next().await.is_none());
    }
}
