//! Black-box harness for the end-to-end tests: starts the real binaries on free loopback
//! ports with their own temp dirs (and, for the etcd backend, a real etcd), and drives them
//! the way users do: the real `kubectl`, the kube-rs client, raw HTTPS.
//!
//! Binaries are taken from the workspace's `target/debug` (override with `KUBE_BIN_DIR`:
//! `hack/bench.sh` points it at `target/release`); `hack/test.sh` builds them before running
//! the tests.

pub mod fixtures;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use store::testing::EtcdServer;
use tempfile::TempDir;

/// Which store the apiserver runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// The kubectl a test runs: 1.33 unless a test asks for another minor.
pub fn kubectl_path(minor: u32) -> PathBuf {
    let versioned = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
    if versioned.exists() {
        versioned
    } else {
        PathBuf::from("kubectl")
    }
}

/// Where the binaries under test are, for tests that start one themselves.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("KUBE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"))
}

/// The resident memory of process `pid` in bytes, read from `/proc` (Linux); 0 once it is
/// gone.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    kib * 1024
}

/// The CPU time process `pid` has used so far (user + system), read from `/proc` (Linux);
/// 0 once it is gone. Per-request CPU is what benchmarks compare on a busy machine, where
/// requests per second swing with whatever else runs.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after its closing parenthesis;
    // utime and stime are the 14th and 15th fields, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running control plane; every process is killed when it is dropped.
pub struct Cluster {
    pub backend: Backend,
    pub port: u16,
    dir: TempDir,
    apiserver: Option<Child>,
    etcd: Option<EtcdServer>,
    /// Flags added to the apiserver's command line.
    extra_args: Vec<String>,
}

impl Cluster {
    /// Starts an apiserver on `backend` and waits until `/readyz` answers ok.
    pub async fn start(backend: Backend) -> Cluster {
        Cluster::start_with(backend, &[]).await
    }

    /// Like [`Cluster::start`], with extra apiserver flags.
    pub async fn start_with(backend: Backend, extra_args: &[&str]) -> Cluster {
        let etcd = (backend == Backend::Etcd).then(EtcdServer::start);
        let mut cluster = Cluster {
            backend,
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            apiserver: None,
            etcd,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        cluster.start_apiserver().await;
        cluster
    }

    fn apiserver_args(&self) -> Vec<String> {
        let mut args = vec![
            "--secure-port".to_string(),
            self.port.to_string(),
            "--cert-dir".into(),
            self.dir.path().join("pki").display().to_string(),
            "--data-dir".into(),
            self.dir.path().join("data").display().to_string(),
            // What kubeadm adds to the default plugins next to Node,RBAC.
            "--enable-admission-plugins".into(),
            "NodeRestriction".into(),
        ];
        if let Some(etcd) = &self.etcd {
            args.push("--etcd-servers".into());
            args.push(etcd.endpoint());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    async fn start_apiserver(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("apiserver.log")).expect("log file");
        let child = Command::new(bin_dir().join("kube-apiserver"))
            .args(self.apiserver_args())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kube-apiserver (run `cargo build --workspace` first)");
        self.apiserver = Some(child);
        self.wait_ready().await;
    }

    /// Polls `/readyz` in-process (not through kubectl, whose start-up would dominate the
    /// apiserver's own, which the apiserver benchmark measures).
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut client = None;
        loop {
            if client.is_none() && self.kubeconfig().exists() {
                client = self.try_client().await;
            }
            if let Some(client) = &client {
                let readyz = http::Request::get("/readyz")
                    .body(Vec::new())
                    .expect("request");
                if client.request_text(readyz).await.is_ok_and(|b| b == "ok") {
                    return;
                }
            }
            if let Some(status) = self
                .apiserver
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("kube-apiserver exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready after 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Kills the apiserver (like a crash) and starts it again on the same data.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.start_apiserver().await;
    }

    /// Stops the etcd behind an etcd-backed cluster (as an outage would), or starts it
    /// again on the same data.
    pub fn set_etcd_running(&mut self, running: bool) {
        let etcd = self.etcd.as_mut().expect("an etcd-backed cluster");
        if running {
            etcd.restart();
        } else {
            etcd.stop();
        }
    }

    /// The apiserver's resident memory (Linux).
    pub fn apiserver_rss_bytes(&self) -> u64 {
        rss_bytes(self.apiserver.as_ref().expect("apiserver running").id())
    }

    /// The CPU time the apiserver has used so far, in seconds (Linux).
    pub fn apiserver_cpu_seconds(&self) -> f64 {
        cpu_seconds(self.apiserver.as_ref().expect("apiserver running").id())
    }

    /// The admin kubeconfig the apiserver generated.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("pki/admin.conf")
    }

    /// A directory private to this cluster, for files a test writes.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The apiserver's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("apiserver.log")).unwrap_or_default()
    }

    /// Runs kubectl 1.33 with the admin kubeconfig and a private discovery cache.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_version(33, args, None)
    }

    /// Runs kubectl 1.33 as the holder of a bearer `token` (a `--token-auth-file` user), with
    /// no kubeconfig and so no client certificate.
    pub fn kubectl_as_token(&self, token: &str, args: &[&str]) -> Output {
        let server = format!("https://127.0.0.1:{}", self.port);
        let mut all = vec![
            "--kubeconfig",
            "/dev/null",
            "--server",
            &server,
            "--insecure-skip-tls-verify",
            "--token",
            token,
        ];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    /// Runs a given kubectl minor, optionally feeding `stdin`.
    pub fn kubectl_version(&self, minor: u32, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(kubectl_path(minor));
        command
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match stdin {
            None => command.stdin(Stdio::null()).output().expect("run kubectl"),
            Some(input) => {
                use std::io::Write;
                let mut child = command.stdin(Stdio::piped()).spawn().expect("run kubectl");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(input.as_bytes())
                    .expect("write stdin");
                child.wait_with_output().expect("run kubectl")
            }
        }
    }

    /// Runs kubectl and returns its stdout, failing the test (with stderr and the apiserver
    /// log) if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.succeed(args, None)
    }

    /// Runs kubectl expecting failure; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {} unexpectedly succeeded: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Like [`Cluster::ok`], with `input` on stdin (`kubectl create -f -`).
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        self.succeed(args, Some(input))
    }

    fn succeed(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_version(33, args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{}\n--- apiserver log ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kube-rs client authenticated as the admin.
    pub async fn client(&self) -> kube::Client {
        self.try_client()
            .await
            .expect("a client from the admin kubeconfig")
    }

    /// A kube-rs client holding the bearer `token` (a `--token-auth-file` user or a
    /// service-account token) instead of the admin's certificate.
    pub async fn client_as_token(&self, token: &str) -> kube::Client {
        self.client_with(serde_json::json!({ "token": token }))
            .await
    }

    /// A kube-rs client with no credentials at all: its requests are anonymous.
    pub async fn anonymous_client(&self) -> kube::Client {
        self.client_with(serde_json::json!({})).await
    }

    /// A client for the admin kubeconfig's server and CA, presenting the kubeconfig user
    /// `credentials` instead of the admin's certificate.
    async fn client_with(&self, credentials: serde_json::Value) -> kube::Client {
        let kubeconfig =
            kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("admin kubeconfig");
        config.auth_info = serde_json::from_value(credentials).expect("credentials");
        kube::Client::try_from(config).expect("client")
    }

    /// A client from the admin kubeconfig, unless it is not (completely) written yet.
    async fn try_client(&self) -> Option<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).ok()?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .ok()?;
        kube::Client::try_from(config).ok()
    }
}

/// A control-plane component started next to the apiserver (kube-scheduler,
/// kube-controller-manager, node-simulator); killed when dropped.
pub struct Process {
    child: Option<Child>,
    log: PathBuf,
    /// The port serving `/healthz` and `/metrics`, for components that serve them.
    pub port: Option<u16>,
}

impl Process {
    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its resident memory in bytes (Linux); 0 once it is gone.
    pub fn rss_bytes(&self) -> u64 {
        self.pid().map_or(0, rss_bytes)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Its log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A GET of `path` on its health and metrics port, which serves HTTPS with a
    /// self-signed certificate as upstream's components do (so the certificate is not
    /// verified); the body, if it answered 200.
    pub fn http_get(&self, path: &str) -> Option<String> {
        let url = format!("https://127.0.0.1:{}{path}", self.port?);
        let out = Command::new("curl")
            .args(["--silent", "--insecure", "--max-time", "5"])
            .args(["--write-out", "\n%{http_code}", &url])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let (body, code) = text.rsplit_once('\n')?;
        (code == "200").then(|| body.to_string())
    }

    /// The value of the first sample on `/metrics` whose line starts with `series` (a name,
    /// or a name and labels).
    pub fn metric(&self, series: &str) -> Option<f64> {
        self.http_get("/metrics")?
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Cluster {
    fn start_process(&self, binary: &str, args: &[String], port: Option<u16>) -> Process {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let log = self.dir.path().join(format!(
            "{binary}-{}.log",
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let child = Command::new(bin_dir().join(binary))
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {binary} (run `cargo build --workspace` first): {e}")
            });
        Process {
            child: Some(child),
            log,
            port,
        }
    }

    /// Starts a component that authenticates with the kubeconfig `pki/<kubeconfig>` the
    /// apiserver wrote for it and serves HTTPS `/healthz` and `/metrics` on a free port.
    fn start_component(&self, binary: &str, kubeconfig: &str, args: &[&str]) -> Process {
        let port = free_port();
        let kubeconfig = self.dir.path().join("pki").join(kubeconfig);
        let mut all = vec![
            "--kubeconfig".to_string(),
            kubeconfig.display().to_string(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            "--secure-port".into(),
            port.to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        self.start_process(binary, &all, Some(port))
    }

    /// Starts kube-scheduler (its health and metrics port is [`Process::port`]); `args` are
    /// extra flags.
    pub fn start_scheduler(&self, args: &[&str]) -> Process {
        self.start_component("kube-scheduler", "scheduler.conf", args)
    }

    /// Starts a node-simulator with the admin kubeconfig; `args` are its flags (`--nodes 3`).
    pub fn start_node_simulator(&self, args: &[&str]) -> Process {
        let mut all = vec![
            "--kubeconfig".to_string(),
            self.kubeconfig().display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        self.start_process("node-simulator", &all, None)
    }

    /// Starts kube-controller-manager (its health and metrics port is [`Process::port`])
    /// signing service-account token Secrets with the apiserver's key and certificates with
    /// the cluster CA, each controller writing as its own service account, as kubeadm sets
    /// it up; `args` are extra flags.
    pub fn start_controller_manager(&self, args: &[&str]) -> Process {
        let pki = self.dir.path().join("pki");
        let path = |file: &str| pki.join(file).display().to_string();
        let (key, ca_cert, ca_key) = (path("sa.key"), path("ca.crt"), path("ca.key"));
        let mut all = vec![
            "--service-account-private-key-file",
            key.as_str(),
            "--cluster-signing-cert-file",
            ca_cert.as_str(),
            "--cluster-signing-key-file",
            ca_key.as_str(),
            "--use-service-account-credentials",
        ];
        all.extend_from_slice(args);
        self.start_component("kube-controller-manager", "controller-manager.conf", &all)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Generates one test per case and backend for cases that start their own cluster (with
/// flags of their own): `with_each_backend!(a, b)` runs `async fn a(backend: Backend)` once
/// with the embedded store and once with a real etcd, in modules `embedded` and `etcd`, or in
/// the modules named first (`with_each_backend!(in rbac_embedded, rbac_etcd: a, b)`) where
/// [`on_both_backends!`] already took those names.
#[macro_export]
macro_rules! with_each_backend {
    (in $embedded:ident, $etcd:ident: $($case:ident),* $(,)?) => {
        mod $embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::Embedded).await;
                }
            )*
        }
        mod $etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::Backend::Etcd).await;
                }
            )*
        }
    };
    ($($case:ident),* $(,)?) => {
        $crate::with_each_backend!(in embedded, etcd: $($case),*);
    };
}

/// Generates one test per case and backend: `cases!(a, b)` runs `async fn a(cluster: &mut
/// Cluster)` against a fresh cluster on the embedded store and on a real etcd.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut cluster = $crate::Cluster::start($crate::Backend::Embedded).await;
                    super::$case(&mut cluster).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let mut cluster = $crate::Cluster::start($crate::Backend::Etcd).await;
                    super::$case(&mut cluster).await;
                }
            )*
        }
    };
}
