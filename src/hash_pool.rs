//! A small fixed pool of threads for slow password hashes (Argon2id), so a
//! burst of logins with operator-chosen passwords can neither starve the
//! async executor nor run more hashes at once than the pool has threads.
//! Fixed threads also bound memory: each Argon2id hash takes 19 MiB, and the
//! allocator keeps what a thread freed for that thread's next hash.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// The pool. Dropping it lets the threads finish their queue and exit.
pub struct HashPool {
    jobs: SyncSender<Job>,
}

/// The pool has shut down (only while the process exits).
#[derive(Debug, thiserror::Error)]
#[error("the password hashing pool has stopped")]
pub struct PoolStopped;

impl HashPool {
    /// A pool of `threads` workers (at least one) with a bounded queue; a
    /// full queue makes callers wait instead of piling up work.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads * 64);
        let queue: Arc<Mutex<Receiver<Job>>> = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(q) => q.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
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
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .max(1)
    }

    /// Queues `work` without waiting for it (dropped if the queue is full).
    pub fn spawn(&self, work: impl FnOnce() + Send + 'static) {
        let _ = self.jobs.try_send(Box::new(work));
    }

    /// Runs `work` on the pool and waits for its result without blocking the
    /// async executor.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolStopped> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        let jobs = self.jobs.clone();
        // A full queue blocks the sender: wait for room off the executor.
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(job)) => {
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|_| PoolStopped)?
                    .map_err(|_| PoolStopped)?;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(PoolStopped),
        }
        rx.await.map_err(|_| PoolStopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn never_runs_more_jobs_than_threads() {
        let pool = Arc::new(HashPool::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
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
}
