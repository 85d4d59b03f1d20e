//! Runs the real `sluicegate` binary: `sluicegate serve --config FILE --listen 127.0.0.1:0`.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How long start-up and shutdown may take before the harness gives up.
const PATIENCE: Duration = Duration::from_secs(20);

/// Environment variables the gateway must not inherit from the test runner.
const SCRUBBED_ENV: &[&str] = &[
    "RUST_LOG",
    "SLUICEGATE_CONFIG",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The `sluicegate` binary next to this test executable (`<target>/debug/sluicegate`).
/// `SLUICEGATE_BIN` overrides the search.
pub fn sluicegate_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SLUICEGATE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current test executable");
    let found = exe
        .ancestors()
        .skip(1)
        .map(|dir| dir.join(format!("sluicegate{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| p.is_file());
    let Some(bin) = found else {
        panic!(
            "no sluicegate binary next to {}: run `cargo build -p sluicegate-gateway` first",
            exe.display()
        );
    };
    warn_if_stale(&bin);
    bin
}

/// Says so (once) when a source file is newer than the binary under test.
fn warn_if_stale(bin: &Path) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(built) = bin.metadata().and_then(|m| m.modified()) else {
            return;
        };
        let root = crate::workspace_dir();
        let newest = ["gateway", "adapters", "router", "policies"]
            .iter()
            .map(|c| newest_mtime(&root.join(c).join("src")))
            .max()
            .flatten();
        if newest.is_some_and(|n| n > built) {
            eprintln!(
                "warning: {} is older than the gateway's sources; \
                 run `cargo build -p sluicegate-gateway` to test the current code",
                bin.display()
            );
        }
    });
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "sluicegate-e2e-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// Writes `toml` to `<dir>/policy.toml`.
pub fn write_policy(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    std::fs::write(&path, toml).expect("write the policy");
    path
}

/// Runs `sluicegate ARGS` to completion (for `check`) with a clean environment.
pub fn run_sluicegate(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(sluicegate_bin());
    cmd.args(args).stdin(Stdio::null());
    clean_env(&mut cmd, envs);
    cmd.output().expect("run sluicegate")
}

fn clean_env(cmd: &mut Command, envs: &[(&str, &str)]) {
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd.envs(envs.iter().copied());
}

/// A running gateway process. Killed when dropped; its stderr is printed if the test failed.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl Gateway {
    /// Polls `/readyz` until 200 (a classifier or a local model still loading answers 503);
    /// panics after `limit`.
    pub async fn wait_ready(&self, limit: std::time::Duration) {
        let client = crate::http_client();
        let url = format!("{}/readyz", self.url());
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let r = client.get(&url).send().await.expect("GET /readyz");
            if r.status() == 200 {
                return;
            }
            let body = r.text().await.unwrap_or_default();
            assert!(
                tokio::time::Instant::now() < deadline,
                "not ready after {limit:?}: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Writes `policy_toml` to a temp dir and starts the gateway there on a free port, with
    /// `envs` added to a scrubbed copy of this process's environment.
    pub async fn start(policy_toml: &str, envs: &[(&str, &str)]) -> Gateway {
        let dir = temp_dir();
        let config = write_policy(&dir, policy_toml);
        let mut cmd = Command::new(sluicegate_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            // Relative paths the gateway writes (the default ledger file) stay in the temp dir.
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        clean_env(&mut cmd, envs);
        let mut child = cmd.spawn().expect("spawn sluicegate");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("stderr pipe");
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr buffer")
                    .extend_from_slice(&buf[..n]);
            }
        });

        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let addr = line
                    .trim()
                    .strip_prefix("sluicegate listening on http://")
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                if let (Some(addr), Some(tx)) = (addr, tx.take()) {
                    let _ = tx.send(addr);
                }
            }
        });

        let mut gateway = Gateway {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
            stderr_reader: Some(stderr_reader),
            dir,
        };
        match tokio::time::timeout(PATIENCE, rx).await {
            Ok(Ok(addr)) => gateway.addr = addr,
            Ok(Err(_)) => {
                let status = gateway.wait_for_exit(Duration::from_secs(5)).await;
                panic!(
                    "sluicegate exited during start-up ({status:?}); stderr:\n{}",
                    gateway.stderr()
                );
            }
            Err(_) => panic!(
                "sluicegate did not print its listening line within {PATIENCE:?}; stderr:\n{}",
                gateway.stderr()
            ),
        }
        gateway
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The gateway's working directory (its policy file and, by default, its ledger).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).into_owned()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit (panics after 20s) and for its stderr to be read.
    pub async fn wait(&mut self) -> ExitStatus {
        let Some(status) = self.wait_for_exit(PATIENCE).await else {
            panic!(
                "sluicegate did not exit within {PATIENCE:?}; stderr:\n{}",
                self.stderr()
            );
        };
        if let Some(reader) = self.stderr_reader.take() {
            let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        }
        status
    }

    async fn wait_for_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            eprintln!("--- sluicegate stderr ---\n{}\n--- end ---", self.stderr());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
