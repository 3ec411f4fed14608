//! Background computation: CPU work that no caller is waiting for.
//!
//! A consumer's recompute (decoding an account's signals, computing its
//! snapshot and rollups) runs because a signal arrived, not because a
//! caller asked; when the cores are busy, a caller's query should get them
//! first. [`run`] hands such work to a small pool of threads that run at a
//! lower scheduling priority ([`NICE`]) than the threads answering calls.
//! The kernel then gives them the cores the calls leave idle, and about a
//! tenth of a busy core besides, so background work slows under load but
//! never stops (docs/ARCHITECTURE.md, "Calls before background work").
//!
//! What a caller waits for — a portfolio query folding its pages, say —
//! keeps using `tokio::task::spawn_blocking`, at the normal priority.
//!
//! The pool is one per process, started on first use and never stopped:
//! its threads hold no state between jobs, and the process's exit ends
//! them.

use std::sync::OnceLock;

/// The nice value of the background threads: 10 gives each about a tenth
/// of the weight of a thread at the default 0 when both want a core.
pub const NICE: i32 = 10;

/// Threads of the pool: enough for the consumers of every service of one
/// process to compute at once.
const THREADS: usize = 4;

fn pool() -> &'static tokio::runtime::Runtime {
    static POOL: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    POOL.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(THREADS)
            .thread_name("retain-background")
            .on_thread_start(lower_priority)
            .build()
            .expect("the background pool's threads start")
    })
}

/// Lowers the calling thread's priority to [`NICE`]. Lowering needs no
/// privilege; where the system refuses anyway, the thread runs at the
/// default priority (logged once per thread at debug level).
fn lower_priority() {
    // On Linux the nice value belongs to the thread: PRIO_PROCESS with
    // the thread's own id sets this thread's alone. (Elsewhere the pool
    // runs at the default priority.)
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        let now = rustix::process::getpriority_process(me).unwrap_or(0);
        if let Err(e) = rustix::process::setpriority_process(me, now.max(NICE)) {
            tracing::debug!(error = %e, "could not lower a background thread's priority");
        }
    }
}

/// Runs `work` on the background pool and waits for its result. A panic
/// in `work` comes back as the error.
pub async fn run<F, T>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pool().spawn_blocking(work).await
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .expect("a thread may read its own priority")
    }

    #[tokio::test]
    async fn work_runs_on_a_thread_of_lower_priority_and_the_caller_keeps_its_own() {
        let before = own_nice();
        let (name, nice) = run(|| {
            let name = std::thread::current().name().map(str::to_owned);
            (name, own_nice())
        })
        .await
        .expect("the work runs");
        assert_eq!(name.as_deref(), Some("retain-background"));
        // A process started above NICE keeps its (lower) priority.
        assert_eq!(nice, NICE.max(before), "the background thread's nice value");
        assert_eq!(
            own_nice(),
            before,
            "the calling thread's priority is untouched"
        );
    }

    #[tokio::test]
    async fn a_panic_comes_back_as_an_error() {
        let r = run(|| -> u32 { panic!("boom") }).await;
        assert!(r.is_err());
    }
}
