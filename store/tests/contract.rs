//! The behavioural contract of `store::Store`, run against every backend: the embedded one
//! and a real etcd started for each test.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::{Error, Event, ListOptions, Store, WatchResponse, WatchStream};

/// Generates one test per case and backend.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::support::embedded().await;
                    super::$case(backend.store.clone()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::support::etcd().await;
                    super::$case(backend.store.clone()).await;
                }
            )*
        }
    };
}

suite!(
    create_assigns_increasing_revisions,
    update_is_compare_and_swap,
    delete_returns_the_value_and_honours_preconditions,
    list_pages_see_one_revision,
    list_rejects_future_revisions,
    watch_orders_concurrent_writes_without_gaps_or_duplicates,
    watch_resumes_from_a_revision,
    watch_sees_only_its_prefix,
    watch_reports_progress_on_a_quiet_prefix,
    compaction_makes_old_revisions_gone,
    one_writer_wins_each_round_on_a_contended_key,
);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Next watch response, failing the test after a few seconds instead of hanging.
async fn next(watch: &mut WatchStream) -> store::Result<WatchResponse> {
    tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("watch delivered nothing for 10 s")
        .expect("watch ended")
}

/// Collects `n` events, skipping progress notifications.
async fn events(watch: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    while out.len() < n {
        match next(watch).await.expect("watch failed") {
            WatchResponse::Events(batch) => out.extend(batch),
            WatchResponse::Progress { .. } => {}
        }
    }
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

async fn create_assigns_increasing_revisions(store: Arc<dyn Store>) {
    let start = store.current_revision().await.unwrap();
    let r1 = store.create(b"/pods/default/a", b("one")).await.unwrap();
    let r2 = store.create(b"/pods/default/b", b("two")).await.unwrap();
    assert!(start < r1 && r1 < r2, "{start} < {r1} < {r2}");
    assert_eq!(store.current_revision().await.unwrap(), r2);

    let a = store.get(b"/pods/default/a").await.unwrap().unwrap();
    assert_eq!(
        (a.key, a.value, a.create_revision, a.mod_revision),
        (b("/pods/default/a"), b("one"), r1, r1)
    );
    assert!(store.get(b"/pods/default/missing").await.unwrap().is_none());

    let again = store.create(b"/pods/default/a", b("other")).await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { ref key }) if key == "/pods/default/a"),
        "{again:?}"
    );
    assert_eq!(
        store.get(b"/pods/default/a").await.unwrap().unwrap().value,
        b("one")
    );
    assert_eq!(
        store.current_revision().await.unwrap(),
        r2,
        "a failed create takes no revision"
    );
}

async fn update_is_compare_and_swap(store: Arc<dyn Store>) {
    let created = store.create(b"/cm/x", b("v1")).await.unwrap();
    let updated = store.update(b"/cm/x", b("v2"), created).await.unwrap();
    assert!(updated > created);
    let kv = store.get(b"/cm/x").await.unwrap().unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision),
        (b("v2"), created, updated)
    );

    let stale = store.update(b"/cm/x", b("v3"), created).await;
    assert!(
        matches!(stale, Err(Error::Conflict { expected, actual, .. }) if expected == created && actual == updated),
        "{stale:?}"
    );
    assert_eq!(store.get(b"/cm/x").await.unwrap().unwrap().value, b("v2"));

    let missing = store.update(b"/cm/nope", b("v"), created).await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

async fn delete_returns_the_value_and_honours_preconditions(store: Arc<dyn Store>) {
    let created = store.create(b"/secrets/s", b("data")).await.unwrap();
    let stale = store.delete(b"/secrets/s", Some(created - 1)).await;
    assert!(matches!(stale, Err(Error::Conflict { .. })), "{stale:?}");
    assert!(
        store.get(b"/secrets/s").await.unwrap().is_some(),
        "a failed delete keeps the key"
    );

    let (revision, prev) = store.delete(b"/secrets/s", Some(created)).await.unwrap();
    assert!(revision > created);
    assert_eq!(
        (prev.key, prev.value, prev.mod_revision),
        (b("/secrets/s"), b("data"), created)
    );
    assert!(store.get(b"/secrets/s").await.unwrap().is_none());

    let again = store.delete(b"/secrets/s", None).await;
    assert!(matches!(again, Err(Error::NotFound { .. })), "{again:?}");

    let recreated = store.create(b"/secrets/s", b("new")).await.unwrap();
    let kv = store.get(b"/secrets/s").await.unwrap().unwrap();
    assert_eq!(
        kv.create_revision, recreated,
        "a re-created key starts a new life"
    );
    let (_, prev) = store.delete(b"/secrets/s", None).await.unwrap();
    assert_eq!(prev.value, b("new"));
}

async fn list_pages_see_one_revision(store: Arc<dyn Store>) {
    for i in 0..25 {
        store
            .create(format!("/pods/ns/p{i:02}").as_bytes(), b(&format!("v{i}")))
            .await
            .unwrap();
    }
    // Neighbours of the prefix that must never show up in it.
    store.create(b"/pods/nsx/other", b("x")).await.unwrap();
    store.create(b"/pods/nr", b("x")).await.unwrap();
    assert_eq!(store.count(b"/pods/ns/").await.unwrap(), 25);

    let first = store
        .list(
            b"/pods/ns/",
            ListOptions {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 10);
    assert_eq!(first.remaining, 15);
    assert_eq!(first.revision, store.current_revision().await.unwrap());
    let at = first.revision;

    // The world moves on between pages.
    let p12 = store.get(b"/pods/ns/p12").await.unwrap().unwrap();
    store
        .update(b"/pods/ns/p12", b("changed"), p12.mod_revision)
        .await
        .unwrap();
    store.delete(b"/pods/ns/p20", None).await.unwrap();
    store.create(b"/pods/ns/p15a", b("late")).await.unwrap();
    store.delete(b"/pods/ns/p03", None).await.unwrap();

    let mut seen: Vec<(Bytes, Bytes)> = first
        .kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let mut last = first.kvs.last().unwrap().key.clone();
    loop {
        let options = ListOptions {
            limit: 10,
            start_after: Some(last.slice(b"/pods/ns/".len()..)),
            revision: at,
        };
        let page = store.list(b"/pods/ns/", options).await.unwrap();
        assert_eq!(page.revision, at);
        seen.extend(page.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())));
        if page.remaining == 0 {
            break;
        }
        assert_eq!(page.kvs.len(), 10);
        last = page.kvs.last().unwrap().key.clone();
    }
    let expected: Vec<(Bytes, Bytes)> = (0..25)
        .map(|i| (b(&format!("/pods/ns/p{i:02}")), b(&format!("v{i}"))))
        .collect();
    assert_eq!(
        seen, expected,
        "the pages together are the list as of the first page"
    );

    let now = store
        .list(b"/pods/ns/", ListOptions::default())
        .await
        .unwrap();
    let keys: Vec<_> = now
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect();
    assert_eq!(keys.len(), 24);
    assert!(
        keys.contains(&"/pods/ns/p15a".to_string()) && !keys.contains(&"/pods/ns/p20".to_string())
    );
    assert_eq!(
        now.kvs
            .iter()
            .find(|kv| kv.key == "/pods/ns/p12")
            .unwrap()
            .value,
        b("changed")
    );
    assert_eq!(now.remaining, 0);
}

async fn list_rejects_future_revisions(store: Arc<dyn Store>) {
    store.create(b"/a", b("x")).await.unwrap();
    let current = store.current_revision().await.unwrap();
    let options = ListOptions {
        revision: current + 100,
        ..Default::default()
    };
    let result = store.list(b"/", options).await;
    assert!(
        matches!(result, Err(Error::FutureRevision { .. })),
        "{result:?}"
    );
}

async fn watch_orders_concurrent_writes_without_gaps_or_duplicates(store: Arc<dyn Store>) {
    let mut watch = store.watch(b"/leases/", 0).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..40 {
                    let key = format!("/leases/w{w}/k{i}");
                    let revision = store.create(key.as_bytes(), b("x")).await.unwrap();
                    acked.push((key, revision));
                }
                acked
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    let seen = events(&mut watch, acked.len()).await;
    let revisions: Vec<i64> = seen.iter().map(Event::revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "events in strictly increasing revision order"
    );
    let seen: HashSet<(String, i64)> = seen
        .iter()
        .map(|e| (String::from_utf8_lossy(e.key()).into_owned(), e.revision()))
        .collect();
    assert_eq!(
        seen, acked,
        "every acknowledged write exactly once, at its revision"
    );
}

async fn watch_resumes_from_a_revision(store: Arc<dyn Store>) {
    let mut revisions = Vec::new();
    for i in 0..10 {
        revisions.push(
            store
                .create(format!("/ev/k{i}").as_bytes(), b("x"))
                .await
                .unwrap(),
        );
    }
    let (deleted_at, _) = store.delete(b"/ev/k0", None).await.unwrap();

    let mut watch = store.watch(b"/ev/", revisions[4]).await.unwrap();
    let replayed = events(&mut watch, 6).await;
    let got: Vec<i64> = replayed.iter().map(Event::revision).collect();
    assert_eq!(
        got,
        [&revisions[5..], &[deleted_at]].concat(),
        "only changes after the revision"
    );
    match &replayed[5] {
        Event::Delete { revision, prev } => {
            assert_eq!(*revision, deleted_at);
            assert_eq!(
                (prev.key.clone(), prev.value.clone(), prev.mod_revision),
                (b("/ev/k0"), b("x"), revisions[0])
            );
        }
        other => panic!("expected a delete, got {other:?}"),
    }

    // Live changes follow the replay seamlessly.
    let kv = store.get(b"/ev/k9").await.unwrap().unwrap();
    let updated = store
        .update(b"/ev/k9", b("y"), kv.mod_revision)
        .await
        .unwrap();
    match events(&mut watch, 1).await.remove(0) {
        Event::Put(kv) => {
            assert_eq!(
                (kv.key, kv.value, kv.mod_revision, kv.create_revision),
                (b("/ev/k9"), b("y"), updated, revisions[9])
            )
        }
        other => panic!("expected a put, got {other:?}"),
    }
}

async fn watch_sees_only_its_prefix(store: Arc<dyn Store>) {
    let mut watch = store.watch(b"/pods/a/", 0).await.unwrap();
    store.create(b"/pods/ab/x", b("no")).await.unwrap();
    store.create(b"/pods/b/x", b("no")).await.unwrap();
    let wanted = store.create(b"/pods/a/x", b("yes")).await.unwrap();
    let seen = events(&mut watch, 1).await;
    assert_eq!(seen[0].revision(), wanted);
    assert_eq!(seen[0].key(), &b("/pods/a/x"));
}

async fn watch_reports_progress_on_a_quiet_prefix(store: Arc<dyn Store>) {
    let mut watch = store.watch(b"/quiet/", 0).await.unwrap();
    let elsewhere = store.create(b"/busy/x", b("x")).await.unwrap();
    loop {
        match next(&mut watch).await.unwrap() {
            WatchResponse::Progress { revision } if revision >= elsewhere => break,
            WatchResponse::Progress { .. } => {}
            WatchResponse::Events(events) => panic!("unexpected events {events:?}"),
        }
    }
}

async fn compaction_makes_old_revisions_gone(store: Arc<dyn Store>) {
    let first = store.create(b"/c/k", b("0")).await.unwrap();
    let mut revision = first;
    for i in 1..10 {
        revision = store
            .update(b"/c/k", b(&i.to_string()), revision)
            .await
            .unwrap();
    }
    let other = store.create(b"/c/other", b("o")).await.unwrap();
    store.compact(revision).await.unwrap();

    let old = store
        .list(
            b"/c/",
            ListOptions {
                revision: first,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(old, Err(Error::Compacted { .. })), "{old:?}");
    let at = store
        .list(
            b"/c/",
            ListOptions {
                revision,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        at.kvs.len(),
        1,
        "the state at the compaction revision stays readable"
    );
    assert_eq!(at.kvs[0].value, b("9"));

    match store.watch(b"/c/", first).await {
        Err(Error::Compacted { .. }) => {}
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(mut watch) => {
            let item = next(&mut watch).await;
            assert!(matches!(item, Err(Error::Compacted { .. })), "{item:?}");
        }
    }
    let mut watch = store.watch(b"/c/", revision).await.unwrap();
    assert_eq!(events(&mut watch, 1).await[0].revision(), other);

    let again = store.compact(revision).await;
    assert!(matches!(again, Err(Error::Compacted { .. })), "{again:?}");
    let future = store.compact(other + 100).await;
    assert!(
        matches!(future, Err(Error::FutureRevision { .. })),
        "{future:?}"
    );
}

async fn one_writer_wins_each_round_on_a_contended_key(store: Arc<dyn Store>) {
    let mut revision = store.create(b"/contended", b("start")).await.unwrap();
    for round in 0..5 {
        let attempts: Vec<_> = (0..100)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .update(b"/contended", b(&format!("{round}-{writer}")), revision)
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(new_revision) => winners.push(new_revision),
                Err(Error::Conflict { .. }) => {}
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one compare-and-swap wins"
        );
        revision = winners[0];
        assert_eq!(
            store
                .get(b"/contended")
                .await
                .unwrap()
                .unwrap()
                .mod_revision,
            revision
        );
    }
}
