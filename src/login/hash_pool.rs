//! The fixed pool of threads that runs login-time Argon2id checks (SPEC §5
//! "Bounded hashing"). Its queue holds at most `queue` waiting checks; a
//! check that does not fit is refused at once ([`PoolError::Busy`], a 503)
//! and costs nothing, and a check whose caller has gone away by the time a
//! thread is free is skipped. Nothing else runs here: admin hashing, the
//! fast scheme and `/verify` never wait behind an attacker's backlog.
//! Fixed threads also bound memory: each Argon2id hash takes 19 MiB, and the
//! allocator keeps what a thread freed for that thread's next hash.

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The pool. Dropping it lets the threads finish their queue and exit.
pub struct HashPool {
    /// A bounded multi-consumer queue: each worker holds a receiver of its
    /// own, so no lock is shared between them.
    jobs: Sender<Job>,
}

/// Why a check did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every thread is busy and the queue is full: try again shortly.
    #[error("every password hashing thread is busy and the queue is full")]
    Busy,
    /// The pool has shut down (only while the process exits).
    #[error("the password hashing pool has stopped")]
    Stopped,
}

impl HashPool {
    /// A pool of `threads` workers (at least one) and at most `queue` checks
    /// waiting for one.
    pub fn new(threads: usize, queue: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, waiting) = crossbeam_channel::bounded::<Job>(queue);
        for i in 0..threads {
            let waiting = waiting.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-hash-{i}"))
                .spawn(move || {
                    // Ends once the pool is dropped and its queue is empty.
                    for job in waiting {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self { jobs }
    }

    /// The number of hashing threads suited to this host: one per core but
    /// one, so the token path always keeps a core.
    pub fn default_threads() -> usize {
        threads_for(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Queues `work` without waiting for it (dropped if the queue is full).
    pub fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.try_send(Box::new(work));
    }

    /// Runs `work` on the pool and waits for its result without blocking the
    /// async executor. Refused at once with [`PoolError::Busy`] when the
    /// queue is full. If the returned future is dropped before a thread
    /// takes the job, `work` never runs.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return; // the caller hung up while the job waited
            }
            let _ = tx.send(work());
        });
        match self.jobs.try_send(job) {
            Ok(()) => rx.await.map_err(|_| PoolError::Stopped),
            Err(TrySendError::Full(_)) => Err(PoolError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(PoolError::Stopped),
        }
    }
}

/// Hashing threads for a host with `cores` cores: all but one, at least one.
pub fn threads_for(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn never_runs_more_jobs_than_threads() {
        let pool = Arc::new(HashPool::new(2, 64));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                })
                .await
                .unwrap()
            }));
        }
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        assert_eq!(sum, (0..20).map(|i| i * 2).sum::<i32>());
        assert!(peak.load(Ordering::SeqCst) <= 2);
    }

    /// Blocks the pool's one thread until the returned sender is dropped.
    async fn occupy(pool: &Arc<HashPool>) -> std::sync::mpsc::Sender<()> {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let p = pool.clone();
        tokio::spawn(async move {
            p.run(move || {
                let _ = started_tx.send(());
                let _ = blocked.recv();
            })
            .await
        });
        started.await.unwrap();
        release
    }

    #[test]
    fn one_thread_per_core_but_one_and_at_least_one() {
        assert_eq!(threads_for(0), 1);
        assert_eq!(threads_for(1), 1);
        assert_eq!(threads_for(2), 1);
        assert_eq!(threads_for(3), 2);
        assert_eq!(threads_for(16), 15);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(HashPool::default_threads(), threads_for(cores));
    }

    #[test]
    fn spawned_work_runs() {
        let pool = HashPool::new(1, 4);
        let (tx, rx) = std::sync::mpsc::channel();
        pool.spawn(move || tx.send(7).unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(7));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = Arc::new(HashPool::new(1, 2));
        let release = occupy(&pool).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let mut queued = Vec::new();
        for _ in 0..2 {
            let (p, ran) = (pool.clone(), ran.clone());
            queued.push(tokio::spawn(async move {
                p.run(move || ran.fetch_add(1, Ordering::SeqCst)).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = ran.clone();
        assert_eq!(
            pool.run(move || r.fetch_add(1, Ordering::SeqCst)).await,
            Err(PoolError::Busy)
        );
        drop(release);
        for q in queued {
            assert!(q.await.unwrap().is_ok());
        }
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the refused job never ran");
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        let pool = Arc::new(HashPool::new(1, 4));
        let release = occupy(&pool).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let (p, r) = (pool.clone(), ran.clone());
        let abandoned =
            tokio::spawn(async move { p.run(move || r.fetch_add(1, Ordering::SeqCst)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        abandoned.abort();
        let _ = abandoned.await;
        drop(release);
        let r = ran.clone();
        pool.run(move || r.fetch_add(10, Ordering::SeqCst))
            .await
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 10, "only the live job ran");
    }
}
