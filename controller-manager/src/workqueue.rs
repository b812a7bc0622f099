//! A client-go style work queue for the controllers whose work items are not objects of one
//! kind (the garbage collector's graph nodes): an item queued many times is processed once,
//! never by two workers at once, and failed items come back with per-item exponential backoff.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::metrics;
use crate::runtime::Backoff;

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
}

/// A deduplicating queue shared by a pool of workers.
pub struct WorkQueue<T> {
    name: &'static str,
    state: Mutex<State<T>>,
    ready: Notify,
    backoff: Backoff<T>,
}

impl<T: Hash + Eq + Clone + Send + Sync + 'static> WorkQueue<T> {
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(WorkQueue {
            name,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
            }),
            ready: Notify::new(),
            backoff: Backoff::default(),
        })
    }

    /// Queues `item` unless it is already waiting; an item being processed is queued again
    /// when its worker is done.
    pub fn add(&self, item: T) {
        metrics::WORKQUEUE_ADDS
            .with_label_values(&[self.name])
            .inc();
        let mut state = self.state.lock().expect("queue");
        if !state.dirty.insert(item.clone()) || state.processing.contains(&item) {
            return;
        }
        state.queue.push_back(item);
        metrics::WORKQUEUE_DEPTH
            .with_label_values(&[self.name])
            .set(state.queue.len() as i64);
        drop(state);
        self.ready.notify_one();
    }

    /// Queues `item` again after its backoff delay.
    pub fn add_rate_limited(self: &Arc<Self>, item: T) {
        metrics::WORKQUEUE_RETRIES
            .with_label_values(&[self.name])
            .inc();
        let delay = self.backoff.next(item.clone());
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Resets the backoff of `item` after it succeeded.
    pub fn forget(&self, item: &T) {
        self.backoff.forget(item);
    }

    /// Waits for the next item; the worker must call [`WorkQueue::done`] with it.
    pub async fn get(&self) -> T {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.state.lock().expect("queue");
                if let Some(item) = state.queue.pop_front() {
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone());
                    metrics::WORKQUEUE_DEPTH
                        .with_label_values(&[self.name])
                        .set(state.queue.len() as i64);
                    if !state.queue.is_empty() {
                        self.ready.notify_one();
                    }
                    return item;
                }
            }
            notified.await;
        }
    }

    /// Marks `item` processed, queueing it again if it was added meanwhile.
    pub fn done(&self, item: &T) {
        let mut state = self.state.lock().expect("queue");
        state.processing.remove(item);
        if state.dirty.contains(item) {
            state.queue.push_back(item.clone());
            drop(state);
            self.ready.notify_one();
        }
    }
}
