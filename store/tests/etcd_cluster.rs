//! What only the etcd backend promises: it rides out a member crash in a cluster, fails fast
//! and recovers by itself around a full outage, and isolates stores by prefix.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use store::etcd::{EtcdConfig, EtcdStore};
use store::{Error, Event, Store, WatchResponse, WatchStream};
use support::etcd_server::{EtcdCluster, EtcdServer};

/// Short, so the outage test sees calls give up quickly.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn config(endpoints: Vec<String>, prefix: &str) -> EtcdConfig {
    let mut config = EtcdConfig::new(endpoints);
    config.prefix = prefix.to_string();
    config.request_timeout = REQUEST_TIMEOUT;
    config.progress_interval = Duration::from_millis(200);
    config
}

/// Next watch response, failing the test instead of hanging.
async fn next(watch: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(15), watch.next())
        .await
        .expect("watch delivered nothing for 15 s")
        .expect("watch ended")
        .expect("watch failed")
}

/// Collects `n` events, skipping progress notifications.
async fn events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        if let WatchResponse::Events(batch) = next(watch).await {
            out.extend(batch);
        }
    }
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

/// Waits for a progress notification at or past `revision` (a write outside the watched
/// prefix, since progress only reports revisions not yet delivered), failing on any event
/// before it: proves the watch has nothing more (no duplicate, no stray key) up to `revision`.
async fn quiet_until(watch: &mut WatchStream, revision: i64) {
    loop {
        match next(watch).await {
            WatchResponse::Progress { revision: at } if at >= revision => return,
            WatchResponse::Progress { .. } => {}
            WatchResponse::Events(events) => panic!("unexpected events {events:?}"),
        }
    }
}

/// Creates `key` (with itself as value) like a careful client: repeats after `Unavailable`,
/// and when a repeat finds the key, recognises its own earlier attempt as acknowledged.
/// Returns the revision of the write.
async fn create_acknowledged(store: &EtcdStore, key: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.create(key.as_bytes(), b(key)).await {
            Ok(revision) => return revision,
            Err(Error::AlreadyExists { .. }) => match store.get(key.as_bytes()).await {
                Ok(Some(kv)) if kv.value == key.as_bytes() => return kv.mod_revision,
                Ok(other) => panic!("{key} holds {other:?}, not this writer's value"),
                Err(Error::Unavailable(_)) => {}
                Err(error) => panic!("reading {key} back: {error:?}"),
            },
            Err(Error::Unavailable(reason)) => {
                assert!(
                    Instant::now() < deadline,
                    "{key} still unavailable after 20 s: {reason}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("creating {key}: {error:?}"),
        }
    }
}

/// Index of the member currently leading the cluster, asked of each member directly.
async fn leader(endpoints: &[String]) -> usize {
    for (index, endpoint) in endpoints.iter().enumerate() {
        let mut client = etcd_client::Client::connect([endpoint], None)
            .await
            .expect("connect to one member");
        let status = client.status().await.expect("member status");
        if status.header().map(|header| header.member_id()) == Some(status.leader()) {
            return index;
        }
    }
    panic!("no member claims to be the leader")
}

/// Asserts that `call` fails with `Unavailable`, and within the request timeout (plus slack
/// for scheduling), not after hanging.
async fn assert_unavailable_quickly<T>(
    what: &str,
    call: impl std::future::Future<Output = store::Result<T>>,
) {
    let started = Instant::now();
    match call.await {
        Err(Error::Unavailable(_)) => {}
        Err(error) => panic!("{what} during the outage: {error:?}"),
        Ok(_) => panic!("{what} succeeded during the outage"),
    }
    let took = started.elapsed();
    assert!(
        took < REQUEST_TIMEOUT + Duration::from_secs(1),
        "{what} took {took:?} to fail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_a_watch_survive_killing_the_leader() {
    const WRITES: usize = 200;
    const KILL_AFTER: usize = 60;
    let mut cluster = EtcdCluster::start(3);
    let endpoints = cluster.endpoints();
    let store = Arc::new(
        EtcdStore::connect(config(endpoints.clone(), "/registry"))
            .await
            .unwrap(),
    );
    let mut watch = store.watch(b"/w/", 0).await.unwrap();

    let written = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn({
        let (store, written) = (store.clone(), written.clone());
        async move {
            let mut acked = Vec::new();
            for i in 0..WRITES {
                let key = format!("/w/k{i:03}");
                acked.push((key.clone(), create_acknowledged(&store, &key).await));
                written.fetch_add(1, Ordering::Relaxed);
            }
            acked
        }
    });
    while written.load(Ordering::Relaxed) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(leader(&endpoints).await);
    let acked = writer.await.unwrap();

    for (key, revision) in &acked {
        let kv = store
            .get(key.as_bytes())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {key} is gone"));
        assert_eq!((kv.value, kv.mod_revision), (b(key), *revision), "{key}");
    }
    assert_eq!(store.count(b"/w/").await.unwrap(), WRITES as u64);

    let seen = events(&mut watch, WRITES).await;
    let revisions: Vec<i64> = seen.iter().map(Event::revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "events in strictly increasing revision order"
    );
    let seen: HashSet<(String, i64)> = seen
        .iter()
        .map(|event| {
            (
                String::from_utf8_lossy(event.key()).into_owned(),
                event.revision(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        acked.into_iter().collect::<HashSet<_>>(),
        "every acknowledged write exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_during_an_outage_and_recover_after_restart() {
    let mut server = EtcdServer::start();
    let store = EtcdStore::connect(config(vec![server.endpoint()], "/registry"))
        .await
        .unwrap();
    let mut watch = store.watch(b"/r/", 0).await.unwrap();
    let before = store.create(b"/r/before", b("x")).await.unwrap();
    assert_eq!(events(&mut watch, 1).await[0].revision(), before);

    server.stop();
    assert_unavailable_quickly("get", store.get(b"/r/before")).await;
    assert_unavailable_quickly("create", store.create(b"/r/during", b("x"))).await;
    assert_unavailable_quickly("list", store.list(b"/r/", Default::default())).await;
    assert_unavailable_quickly("watch", store.watch(b"/r/", 0)).await;

    server.restart();
    // The same store, with no reconnect by hand: the first call after the restart works.
    store
        .current_revision()
        .await
        .expect("the store works again once etcd is back");
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(create_acknowledged(&store, &format!("/r/after{i}")).await);
    }
    assert!(
        store.get(b"/r/during").await.unwrap().is_none(),
        "a write refused during the outage never happened"
    );

    // The watch opened before the outage resumed by itself after `before`: the writes made
    // after the restart, each once, in order, and nothing else.
    let resumed: Vec<i64> = events(&mut watch, acked.len())
        .await
        .iter()
        .map(Event::revision)
        .collect();
    assert_eq!(resumed, acked);
    let elsewhere = store.create(b"/elsewhere", b("x")).await.unwrap();
    quiet_until(&mut watch, elsewhere).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let server = EtcdServer::start();
    let a = EtcdStore::connect(config(vec![server.endpoint()], "/tenant-a"))
        .await
        .unwrap();
    let other = EtcdStore::connect(config(vec![server.endpoint()], "/tenant-b"))
        .await
        .unwrap();
    let mut other_watch = other.watch(b"/", 0).await.unwrap();

    a.create(b"/pods/x", b("a")).await.unwrap();
    let theirs = other
        .create(b"/pods/x", b("b"))
        .await
        .expect("the same relative key is free in another prefix");
    a.create(b"/pods/y", b("a")).await.unwrap();

    assert_eq!(a.get(b"/pods/x").await.unwrap().unwrap().value, b("a"));
    assert_eq!(other.get(b"/pods/x").await.unwrap().unwrap().value, b("b"));
    assert!(other.get(b"/pods/y").await.unwrap().is_none());
    let listed = a.list(b"/", Default::default()).await.unwrap();
    let keys: Vec<Bytes> = listed.kvs.into_iter().map(|kv| kv.key).collect();
    assert_eq!(keys, [b("/pods/x"), b("/pods/y")]);
    assert_eq!(other.count(b"/").await.unwrap(), 1);

    let (deleted_at, _) = a.delete(b"/pods/x", None).await.unwrap();
    assert!(
        other.get(b"/pods/x").await.unwrap().is_some(),
        "a delete in one prefix leaves the other alone"
    );

    assert_eq!(events(&mut other_watch, 1).await[0].revision(), theirs);
    quiet_until(&mut other_watch, deleted_at).await;

    // The layout in etcd is the prefix followed by the relative key, as upstream's.
    let mut raw = etcd_client::Client::connect([server.endpoint()], None)
        .await
        .unwrap();
    let stored = raw.get("/tenant-b/pods/x", None).await.unwrap();
    assert_eq!(
        stored.kvs().first().map(|kv| kv.value().to_vec()),
        Some(b"b".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_etcd_fails_with_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let result = EtcdStore::connect(config(vec![endpoint], "/registry")).await;
    assert!(
        matches!(result, Err(Error::Unavailable(_))),
        "{:?}",
        result.err()
    );
    assert!(
        started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

/// etcd 3.4.23 answers a progress request with its current revision even while events below it
/// are still queued for the watcher (etcd-io/etcd#15220); forwarding that answer as is fails
/// this test about every other run. Progress is requested every 2 ms while writers interleave
/// writes inside and outside the watched prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_never_overtakes_events() {
    const WRITERS: usize = 6;
    const WRITES_EACH: usize = 200;
    let server = EtcdServer::start();
    let mut config = config(vec![server.endpoint()], "/registry");
    config.progress_interval = Duration::from_millis(2);
    let store = Arc::new(EtcdStore::connect(config).await.unwrap());
    let mut watch = store.watch(b"/p/", 0).await.unwrap();
    let consumer = tokio::spawn(async move {
        let (mut delivered, mut seen) = (0, 0);
        while seen < WRITERS * WRITES_EACH / 2 {
            match next(&mut watch).await {
                WatchResponse::Events(events) => {
                    for event in events {
                        assert!(
                            event.revision() > delivered,
                            "event {} delivered after {delivered}",
                            event.revision()
                        );
                        delivered = event.revision();
                        seen += 1;
                    }
                }
                WatchResponse::Progress { revision } => {
                    assert!(
                        revision > delivered,
                        "progress {revision} delivered after {delivered}"
                    );
                    delivered = revision;
                }
            }
        }
        watch
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..WRITES_EACH {
                    let prefix = if i % 2 == 0 { "/q" } else { "/p" };
                    store
                        .create(format!("{prefix}/w{w}/k{i}").as_bytes(), b("x"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut watch = consumer.await.unwrap();
    let end = store.create(b"/q/end", b("x")).await.unwrap();
    quiet_until(&mut watch, end).await;
}
