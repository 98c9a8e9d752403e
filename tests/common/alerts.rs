//! Loopback receivers for the alert tests, speaking the real protocols: an HTTP/1.1 server
//! (tests/common/loopback.rs) shaped like Slack's incoming webhook (records each request; answers 200, 429 with
//! `Retry-After`, 500, or never), the same server verifying pgship's webhook signature, and
//! an SMTP server (aiosmtpd, tests/support/smtp_server.py) with STARTTLS or implicit TLS and
//! AUTH, whose received messages come back parsed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;

use super::loopback;

/// How the receiver answers a request.
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    /// 429 with `Retry-After: <secs>`.
    TooMany(u64),
    ServerError,
    /// Read the request, then say nothing until the client goes away.
    Hang,
}

/// A request as received, with when and what was answered.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// The status answered (0: none).
    pub status: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An HTTP receiver on 127.0.0.1 (tests/common/loopback.rs). `replies` are used in order, the
/// last one repeating; with `secret`, a request whose `pgship-signature` is wrong or older
/// than 300 s gets 400.
pub struct Receiver {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    /// Listening until the receiver is dropped.
    _server: loopback::Server,
}

impl Receiver {
    pub fn start(path: &str, replies: Vec<Reply>, secret: Option<&str>) -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let secret = secret.map(str::to_string);
        let count = AtomicUsize::new(0);
        let server = loopback::serve(Arc::new(move |r: loopback::Request| {
            let reply = &replies[count.fetch_add(1, Ordering::SeqCst).min(replies.len() - 1)];
            let sig = r.headers.get("pgship-signature").map(String::as_str);
            let verdict = secret.as_deref().map(|s| verify(s, sig, &r.body, 300));
            let (status, headers, text) = match (reply, verdict) {
                (_, Some(Err(why))) => (400, vec![], why),
                (Reply::Ok, _) => (200, vec![], "ok".to_string()),
                (Reply::TooMany(s), _) => (
                    429,
                    vec![("Retry-After".to_string(), s.to_string())],
                    "rate_limited".into(),
                ),
                (Reply::ServerError, _) => (500, vec![], "internal_error".into()),
                (Reply::Hang, _) => (0, vec![], String::new()),
            };
            seen.lock().unwrap().push(Request {
                path: r.path,
                headers: r.headers,
                body: r.body,
                at: Instant::now(),
                status,
            });
            match status {
                0 => loopback::Reply::Hold,
                _ => loopback::Reply::Answer {
                    status,
                    headers,
                    body: text,
                },
            }
        }))
        .unwrap();
        Receiver {
            url: format!("http://127.0.0.1:{}{path}", server.port()),
            requests,
            _server: server,
        }
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// What docs/alerts.md tells a receiver to do: recompute HMAC-SHA256 over `<t>.<raw body>`,
/// compare in constant time, refuse a `t` older than `tolerance` seconds.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &str,
    tolerance: i64,
) -> Result<(), String> {
    let header = header.ok_or("no signature")?;
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("no timestamp")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - t).abs() > tolerance {
        return Err("stale signature".into());
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let good = v1.iter().any(|hex| {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        bytes.is_some_and(|b| mac.clone().verify_slice(&b).is_ok())
    });
    if good {
        Ok(())
    } else {
        Err("bad signature".into())
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where scripts/setup installs aiosmtpd (PGSHIP_TEST_AIOSMTPD overrides).
pub fn aiosmtpd_dir() -> PathBuf {
    std::env::var_os("PGSHIP_TEST_AIOSMTPD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/pgship/aiosmtpd-1.4.6"))
}

/// The SMTP server of tests/support/smtp_server.py; stopped when dropped.
pub struct Smtp {
    pub port: u16,
    pub ca: PathBuf,
    pub user: String,
    pub password: String,
    out: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Smtp {
    /// `None` (skipped) when aiosmtpd is missing outside CI; a failure under CI.
    pub fn start(password: &str, implicit: bool) -> Option<Smtp> {
        let dir = tempfile::tempdir().unwrap();
        let (ca, crt, key) = super::tls_files(dir.path(), &["localhost", "127.0.0.1"]);
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut c = Command::new("python3");
        c.env("PYTHONPATH", aiosmtpd_dir())
            .env("SMTP_TEST_PASSWORD", password)
            .arg(script)
            .args(["--port", &port.to_string(), "--user", "alerts@x.test"])
            .arg("--cert")
            .arg(&crt)
            .arg("--key")
            .arg(&key)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if implicit {
            c.arg("--implicit");
        }
        let mut child = c.spawn().unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        if !first.starts_with("READY") {
            let _ = child.kill();
            let _ = child.wait();
            let why = format!(
                "the SMTP server did not start (aiosmtpd in {}? run scripts/setup)",
                aiosmtpd_dir().display()
            );
            assert!(!super::in_ci(), "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        }
        Some(Smtp {
            port,
            ca,
            user: "alerts@x.test".into(),
            password: password.into(),
            out,
            child,
            _dir: dir,
        })
    }

    /// The messages received so far, parsed, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .unwrap()
                .to_string_lossy()
                .parse::<u32>()
                .unwrap()
        });
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The variables that point pgship's email channel here.
    pub fn env(&self, to: &str) -> Vec<(String, String)> {
        [
            ("SMTP_HOST", "localhost".to_string()),
            ("SMTP_PORT", self.port.to_string()),
            ("SMTP_USER", self.user.clone()),
            ("SMTP_PASSWORD", self.password.clone()),
            ("ALERT_EMAIL", to.to_string()),
            ("ALERT_EMAIL_FROM", "pgship <pgship@x.test>".to_string()),
            ("PGSHIP_SMTP_CA_FILE", self.ca.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
