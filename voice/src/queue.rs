//! The inference queue: engine calls run `VOICE_INFERENCE_CONCURRENCY` at a
//! time and the rest wait. Its depth is what tells whether this pod should
//! take more work: past `VOICE_INFERENCE_QUEUE_LIMIT` waiting calls the pod
//! reports not-ready (the Service sends its traffic elsewhere), and ready
//! again once the queue has drained to half the limit (no flapping at the
//! edge). The depth and the busy share are metrics, for autoscaling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use prometheus::IntGauge;
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct InferenceQueue {
    slots: Semaphore,
    concurrency: usize,
    waiting: AtomicUsize,
    running: AtomicUsize,
    limit: usize,
    full: AtomicBool,
    depth_gauge: IntGauge,
    busy_gauge: IntGauge,
}

/// A call's place: held while it runs.
pub struct Slot<'a> {
    queue: &'a InferenceQueue,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let running = self.queue.running.fetch_sub(1, Ordering::SeqCst) - 1;
        self.queue.busy_gauge.set(running as i64);
    }
}

/// Counts a caller as waiting until it gets its slot or gives up (a
/// dropped future waits no more).
struct Waiting<'a>(&'a InferenceQueue);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let waiting = self.0.waiting.fetch_sub(1, Ordering::SeqCst) - 1;
        self.0.depth_gauge.set(waiting as i64);
        self.0.update_full(waiting);
    }
}

impl InferenceQueue {
    pub fn new(
        concurrency: usize,
        limit: usize,
        depth_gauge: IntGauge,
        busy_gauge: IntGauge,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: Semaphore::new(concurrency.max(1)),
            concurrency: concurrency.max(1),
            waiting: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            limit: limit.max(1),
            full: AtomicBool::new(false),
            depth_gauge,
            busy_gauge,
        })
    }

    /// Waits for a slot; `None` when the queue is closed.
    pub async fn slot(&self) -> Option<Slot<'_>> {
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        self.depth_gauge.set(waiting as i64);
        self.update_full(waiting);
        let guard = Waiting(self);
        let permit = self.slots.acquire().await.ok()?;
        drop(guard);
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.busy_gauge.set(running as i64);
        Some(Slot {
            queue: self,
            _permit: permit,
        })
    }

    fn update_full(&self, waiting: usize) {
        if waiting >= self.limit {
            self.full.store(true, Ordering::SeqCst);
        } else if waiting <= self.limit / 2 {
            self.full.store(false, Ordering::SeqCst);
        }
    }

    /// Why this pod should take no more work now, if it should not.
    pub fn full_reason(&self) -> Option<String> {
        self.full.load(Ordering::SeqCst).then(|| {
            format!(
                "inference queue full: {} calls waiting (VOICE_INFERENCE_QUEUE_LIMIT {}), {} of {} running",
                self.waiting.load(Ordering::SeqCst),
                self.limit,
                self.running.load(Ordering::SeqCst),
                self.concurrency
            )
        })
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(concurrency: usize, limit: usize) -> Arc<InferenceQueue> {
        InferenceQueue::new(
            concurrency,
            limit,
            IntGauge::new("depth", "d").unwrap(),
            IntGauge::new("busy", "b").unwrap(),
        )
    }

    #[tokio::test]
    async fn full_at_the_limit_and_ready_again_at_half() {
        let q = queue(1, 4);
        let running = q.slot().await.unwrap();
        assert_eq!(q.busy_gauge.get(), 1);
        // Four callers wait: the fourth fills the queue.
        let mut waiters = Vec::new();
        for n in 1..=4 {
            let waiter = q.clone();
            waiters.push(tokio::spawn(async move {
                let _slot = waiter.slot().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            assert_eq!(q.waiting(), n);
            assert_eq!(q.full_reason().is_some(), n >= 4, "{n} waiting");
        }
        assert_eq!(q.depth_gauge.get(), 4);
        let reason = q.full_reason().unwrap();
        assert!(
            reason.contains("4 calls waiting") && reason.contains("1 of 1 running"),
            "{reason}"
        );
        // Draining to 3 keeps it full (hysteresis); 2 (half) frees it.
        drop(running);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(q.waiting(), 3);
        assert!(q.full_reason().is_some(), "3 waiting: still full");
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(q.waiting(), 0);
        assert!(q.full_reason().is_none());
        assert_eq!((q.depth_gauge.get(), q.busy_gauge.get()), (0, 0));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_waits_no_more() {
        let q = queue(1, 2);
        let _running = q.slot().await.unwrap();
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), q.slot()).await;
        assert!(gave_up.is_err());
        assert_eq!(q.waiting(), 0);
    }
}
