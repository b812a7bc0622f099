//! What only the embedded backend promises: durability across `kill -9`, clear errors on a bad
//! data dir, and slow watchers that fall back to on-disk history without gaps.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use store::embedded::{EmbeddedConfig, EmbeddedStore};
use store::{Error, Event, ListOptions, Store, WatchResponse};

/// Set in the child process of the crash test: the data dir it writes to.
const CRASH_CHILD_DIR: &str = "STORE_CRASH_CHILD_DIR";

/// The child half of `acknowledged_writes_survive_kill_9`: writes forever from 16 concurrent
/// writers, printing each write only once the store has acknowledged it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_CHILD_DIR) else {
        return;
    };
    let store = std::sync::Arc::new(EmbeddedStore::open(EmbeddedConfig::new(dir)).unwrap());
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel();
    for writer in 0..16 {
        let (store, acks) = (store.clone(), acks.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/w{writer}-{i}");
                let revision = store
                    .create(key.as_bytes(), Bytes::from(key.clone()))
                    .await
                    .unwrap();
                acks.send(format!("{key} {revision}")).unwrap();
            }
        });
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(line) = acked.recv().await {
        writeln!(stdout, "ACK {line}").unwrap();
        stdout.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(ack) = line.strip_prefix("ACK ") {
            let (key, revision) = ack.split_once(' ').unwrap();
            acked.push((key.to_string(), revision.parse::<i64>().unwrap()));
            if acked.len() == 3000 {
                // SIGKILL: no destructors, no flush, mid-batch for the writers still going.
                child.kill().unwrap();
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(
        acked.len(),
        3000,
        "the child acknowledged writes before dying"
    );

    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("reopen after kill -9");
    for (key, revision) in &acked {
        let kv = store
            .get(key.as_bytes())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(
            (kv.mod_revision, kv.value.as_ref()),
            (*revision, key.as_bytes())
        );
    }
    let highest = acked.iter().map(|(_, r)| *r).max().unwrap();
    assert!(store.current_revision().await.unwrap() >= highest);
    let next = store.create(b"/crash/after", Bytes::new()).await.unwrap();
    assert!(next > highest, "revisions keep growing after the crash");
}

#[tokio::test]
async fn reopening_keeps_keys_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    let created = store
        .create(b"/ns/default", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    store.compact(created).await.unwrap();
    store.close().await;

    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    assert_eq!(store.current_revision().await.unwrap(), created);
    assert_eq!(
        store
            .get(b"/ns/default")
            .await
            .unwrap()
            .unwrap()
            .mod_revision,
        created
    );
    let old = store
        .list(
            b"/",
            ListOptions {
                revision: created - 1,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(old, Err(Error::Compacted { .. })),
        "compaction survives a restart: {old:?}"
    );
    assert!(store.create(b"/ns/other", Bytes::new()).await.unwrap() > created);
}

#[tokio::test]
async fn a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
    let second = EmbeddedStore::open(EmbeddedConfig::new(dir.path()));
    let Err(Error::Unavailable(message)) = second else {
        panic!("second open must fail")
    };
    assert!(message.contains("in use"), "{message}");
}

#[test]
fn a_corrupt_data_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store.redb"), vec![0x42; 64 * 1024]).unwrap();
    let Err(Error::Corrupt(message)) = EmbeddedStore::open(EmbeddedConfig::new(dir.path())) else {
        panic!("opening garbage must fail as Corrupt")
    };
    assert!(
        message.contains("store.redb"),
        "the message names the file: {message}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("store.redb")).unwrap(),
        vec![0x42; 64 * 1024],
        "nothing overwritten"
    );
}

#[test]
fn an_unreadable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let Err(error) = EmbeddedStore::open(EmbeddedConfig::new(&file)) else {
        panic!("must fail")
    };
    assert!(error.to_string().contains("not-a-dir"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_replays_from_disk_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmbeddedConfig::new(dir.path());
    config.watch_buffer = 2;
    let store = EmbeddedStore::open(config).unwrap();
    let mut watch = store.watch(b"/slow/", 0).await.unwrap();
    let mut written = Vec::new();
    for i in 0..300 {
        written.push(
            store
                .create(format!("/slow/{i}").as_bytes(), Bytes::new())
                .await
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let response = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap();
        if let WatchResponse::Events(events) = response.unwrap() {
            seen.extend(events.iter().map(Event::revision));
        }
    }
    assert_eq!(seen, written);
}
