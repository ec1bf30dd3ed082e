//! The one shutdown root of a registry: a cancellation token fanned out to every task and
//! a tracker that every task is spawned on, so stopping cancels once and then waits for
//! all of them (event loop, API server, and the helpers they spawn).
//!
//! It owns no task itself; whoever spawns through it promises to end soon after
//! [`Tasks::token`] is cancelled.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// Cloneable: every clone shares the same token and tracker.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `token` as the root (cancel it to stop everything spawned here).
    pub fn with_token(token: CancellationToken) -> Self {
        Self {
            token,
            tracker: TaskTracker::new(),
        }
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Spawns `future` on the runtime, tracked.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(future)
    }

    /// Runs `work` on the blocking pool, tracked.
    pub fn spawn_blocking<F, T>(&self, work: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.tracker.spawn_blocking(work)
    }

    /// Tasks spawned here that have not finished yet.
    pub fn alive(&self) -> usize {
        self.tracker.len()
    }

    /// Cancels the token, then waits until every tracked task has finished.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_cancels_and_waits_for_every_task() {
        let tasks = Tasks::new();
        let (done, mut finished) = tokio::sync::mpsc::channel::<()>(4);
        for _ in 0..3 {
            let token = tasks.token().clone();
            let done = done.clone();
            tasks.spawn(async move {
                token.cancelled().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let _ = done.send(()).await;
            });
        }
        drop(done);
        assert_eq!(tasks.alive(), 3);
        tasks.shutdown().await;
        assert_eq!(tasks.alive(), 0);
        for _ in 0..3 {
            assert!(finished.try_recv().is_ok(), "a task was not waited for");
        }
    }
}
