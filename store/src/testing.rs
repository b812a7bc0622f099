//! Real etcd processes for tests (this crate's and the end-to-end tests), behind the
//! `test-support` feature: one per test, on its own loopback ports and data dir, so tests run
//! in parallel (threads under `cargo test`, processes under nextest).
//!
//! Free ports are found by binding port 0 and released just before etcd binds them, so another
//! process can grab one in between: startup therefore retries with fresh ports when etcd exits
//! early. Each member logs to a file next to its data (printed when startup fails), keeping test
//! output quiet.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long etcd may take to answer `/health` after being spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Startups tried with fresh ports before a test fails (a port may be taken in between).
const START_ATTEMPTS: usize = 3;
/// Where Debian's etcd-server package installs etcd.
const DEBIAN_ETCD: &str = "/usr/bin/etcd";

/// One etcd member, killed when dropped.
pub struct EtcdServer {
    cluster: EtcdCluster,
}

impl EtcdServer {
    /// Starts a single-member etcd and waits until it serves requests. Panics (failing the
    /// test) when etcd is not installed or does not come up within 20 s.
    pub fn start() -> EtcdServer {
        EtcdServer {
            cluster: EtcdCluster::start(1),
        }
    }

    /// The client URL to pass to `EtcdConfig::new`.
    pub fn endpoint(&self) -> String {
        self.cluster.members[0].client_url()
    }

    /// Kills etcd with SIGKILL: an outage as abrupt as a crash. The data dir is kept.
    pub fn stop(&mut self) {
        self.cluster.kill(0);
    }

    /// Starts etcd again on the same ports and data dir after `stop`, and waits until it serves
    /// requests: the same endpoint comes back with its data.
    pub fn restart(&mut self) {
        let member = &mut self.cluster.members[0];
        member.spawn();
        if let Err(error) = wait_until_healthy(std::slice::from_mut(member)) {
            panic!("etcd did not come back after a restart: {error}");
        }
    }
}

/// An etcd cluster of several members on loopback; every member is killed when dropped.
pub struct EtcdCluster {
    members: Vec<Member>,
    /// Holds every member's data dir and log; removed last, after the members are killed.
    _dir: TempDir,
}

impl EtcdCluster {
    /// Starts `members` members forming one cluster and waits until each serves requests.
    pub fn start(members: usize) -> EtcdCluster {
        assert!(members > 0, "an etcd cluster needs at least one member");
        let binary = etcd_binary();
        let mut attempt = 1;
        loop {
            let mut cluster = EtcdCluster::spawn(&binary, members);
            match wait_until_healthy(&mut cluster.members) {
                Ok(()) => return cluster,
                Err(error) if attempt < START_ATTEMPTS => {
                    eprintln!(
                        "etcd startup attempt {attempt} failed, retrying on other ports: {error}"
                    );
                    attempt += 1;
                }
                Err(error) => panic!("etcd did not start: {error}"),
            }
        }
    }

    /// The client URLs of all members, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Kills member `index` with SIGKILL, as a crash or power loss would.
    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }

    fn spawn(binary: &Path, count: usize) -> EtcdCluster {
        let dir = scratch_dir();
        let ports = free_ports(2 * count);
        let names: Vec<String> = (0..count).map(|i| format!("member{i}")).collect();
        let initial_cluster = names
            .iter()
            .zip(ports.chunks(2))
            .map(|(name, ports)| format!("{name}=http://127.0.0.1:{}", ports[1]))
            .collect::<Vec<_>>()
            .join(",");
        let token = dir
            .path()
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut members: Vec<Member> = names
            .into_iter()
            .zip(ports.chunks(2))
            .map(|(name, ports)| Member {
                binary: binary.to_path_buf(),
                data_dir: dir.path().join(&name),
                log: dir.path().join(format!("{name}.log")),
                name,
                client_port: ports[0],
                peer_port: ports[1],
                initial_cluster: initial_cluster.clone(),
                token: token.clone(),
                process: None,
            })
            .collect();
        for member in &mut members {
            member.spawn();
        }
        EtcdCluster { members, _dir: dir }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }
}

/// One etcd process and everything needed to start it again identically.
struct Member {
    binary: PathBuf,
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    initial_cluster: String,
    token: String,
    process: Option<Child>,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn spawn(&mut self) {
        assert!(
            self.process.is_none(),
            "etcd {} is already running",
            self.name
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("create the etcd log file");
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &self.client_url()])
            .args(["--advertise-client-urls", &self.client_url()])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--logger",
                "zap",
                "--log-level",
                "warn",
                "--log-outputs",
                "stderr",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the etcd log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {}: {error}", self.binary.display()));
        self.process = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Why the member cannot become healthy anymore, if its process exited.
    fn exit_status(&mut self) -> Option<String> {
        let child = self.process.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(format!("etcd {} exited with {status}", self.name)),
            Ok(None) => None,
            Err(error) => Some(format!("cannot check etcd {}: {error}", self.name)),
        }
    }

    /// Whether etcd answers `/health` positively, which in etcd 3.4 means it has a leader and
    /// served a quorum read.
    fn healthy(&self) -> bool {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let mut response = String::new();
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_ok()
            && stream.read_to_string(&mut response).is_ok()
            && response.contains(r#""health":"true""#)
    }

    /// The end of the member's log, to explain a failed startup.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Waits until every member is healthy; fails early when one exits (typically a port taken by
/// another process between `free_ports` and etcd's bind).
fn wait_until_healthy(members: &mut [Member]) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        for member in members.iter_mut() {
            if let Some(exit) = member.exit_status() {
                return Err(format!("{exit}; its log ends with:\n{}", member.log_tail()));
            }
        }
        if members.iter().all(Member::healthy) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = members
                .iter()
                .map(|member| format!("--- {} ---\n{}", member.name, member.log_tail()))
                .collect();
            return Err(format!(
                "not healthy after {STARTUP_TIMEOUT:?}; logs:\n{}",
                logs.join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The etcd binary: Debian's, else the first `etcd` on PATH.
fn etcd_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(PathBuf::from(DEBIAN_ETCD)).chain(on_path).find(|candidate| candidate.is_file()).unwrap_or_else(
        || panic!("etcd not found at {DEBIAN_ETCD} nor on PATH: install etcd-server (hack/test.sh does it)"),
    )
}

/// Distinct free loopback ports: all listeners are held until every port is chosen, so this
/// process never hands out one port twice.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("local address").port())
        .collect()
}

/// A fresh directory for one cluster's data and logs.
fn scratch_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("etcd-test-")
        .tempdir()
        .expect("create a temp dir for etcd")
}
