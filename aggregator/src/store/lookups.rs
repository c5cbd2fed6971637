//! Coalesced point lookups: many concurrent "find X" requests become one
//! ClickHouse query.
//!
//! The read-side twin of [`super::writer`]. A [`Coalescer`] keeps at most
//! `max_in_flight` queries running; requests that arrive while they run
//! wait in a queue and are answered together by the next query ("smart
//! batching"). There is no fixed wait: at low load a request is sent at
//! once, alone; under load batches grow by themselves, which keeps the
//! number of queries per second bounded. Used for the lookups of event
//! ingestion (stored event ids, clicks by id, clicks by device).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::StoreError;

type Reply<V> = oneshot::Sender<Result<Option<V>, Arc<StoreError>>>;

/// Batches lookups of `K` into queries that return `V`s.
#[derive(Debug)]
pub struct Coalescer<K, V> {
    tx: mpsc::Sender<(K, Reply<V>)>,
}

impl<K, V> Clone for Coalescer<K, V> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the batching task. `fetch` answers a batch of distinct keys
    /// with the values found (absent keys are "not found").
    pub fn spawn<F, Fut>(max_keys: usize, max_in_flight: usize, fetch: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(65_536);
        tokio::spawn(run(
            rx,
            max_keys.max(1),
            max_in_flight.max(1),
            Arc::new(fetch),
        ));
        Self { tx }
    }

    /// Looks `key` up (batched with whatever else is waiting).
    pub async fn get(&self, key: K) -> Result<Option<V>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((key, reply))
            .await
            .map_err(|_| StoreError::ShutDown)?;
        match answer.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::from_shared(e)),
            Err(_) => Err(StoreError::ShutDown),
        }
    }
}

async fn run<K, V, F, Fut>(
    mut rx: mpsc::Receiver<(K, Reply<V>)>,
    max_keys: usize,
    max_in_flight: usize,
    fetch: Arc<F>,
) where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
    F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_in_flight));
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: whatever queues up meanwhile joins
        // this batch.
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let mut waiting = vec![first];
        while waiting.len() < max_keys {
            match rx.try_recv() {
                Ok(req) => waiting.push(req),
                Err(_) => break,
            }
        }
        let fetch = Arc::clone(&fetch);
        tokio::spawn(async move {
            let mut keys: Vec<K> = Vec::with_capacity(waiting.len());
            for (k, _) in &waiting {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            match fetch(keys).await {
                Ok(found) => {
                    for (k, reply) in waiting {
                        let _ = reply.send(Ok(found.get(&k).cloned()));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for (_, reply) in waiting {
                        let _ = reply.send(Err(Arc::clone(&e)));
                    }
                }
            }
            drop(permit);
        });
    }
}

/// A ClickHouse string literal (quotes and backslashes escaped).
pub fn sql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(sql_string("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(
            sql_string("'); DROP TABLE clicks; --"),
            r"'\'); DROP TABLE clicks; --'"
        );
    }

    #[tokio::test]
    async fn concurrent_lookups_share_queries_and_each_gets_its_answer() {
        let queries = Arc::new(AtomicUsize::new(0));
        let q = Arc::clone(&queries);
        let c: Coalescer<u32, u32> = Coalescer::spawn(1000, 1, move |keys: Vec<u32>| {
            let q = Arc::clone(&q);
            async move {
                q.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(keys
                    .into_iter()
                    .filter(|k| k % 2 == 0)
                    .map(|k| (k, k * 10))
                    .collect())
            }
        });
        let tasks: Vec<_> = (0..100u32)
            .map(|k| {
                let c = c.clone();
                tokio::spawn(async move { (k, c.get(k).await) })
            })
            .collect();
        for t in tasks {
            let (k, v) = t.await.expect("join");
            assert_eq!(v.expect("ok"), (k % 2 == 0).then_some(k * 10));
        }
        assert!(
            queries.load(Ordering::SeqCst) < 20,
            "{} queries for 100 lookups",
            queries.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn a_failed_query_fails_every_waiter_with_the_same_retry_class() {
        let c: Coalescer<u32, u32> = Coalescer::spawn(10, 1, |_keys: Vec<u32>| async {
            Err(StoreError::Unavailable("down".into()))
        });
        let err = c.get(1).await.expect_err("fails");
        assert!(err.is_retryable());
    }
}
