//! A real SMTP server for email tests: Python's `aiosmtpd` (from PyPI or
//! Debian's `python3-aiosmtpd`), started per test on a port of
//! `127.0.0.1`, storing each accepted message as a file the test reads.
//!
//! Without Python's `aiosmtpd` the test skips and says why; with
//! `RETAIN_REQUIRE_SMTP=1` (set by CI, which installs it) it fails
//! instead, so a CI run never skips the email tests silently.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SCRIPT: &str = include_str!("smtp_sink.py");

/// A running SMTP server; stopped when dropped. Recipients at
/// `reject.test` are refused with a permanent 550.
#[derive(Debug)]
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The whole message as received (headers and body).
    pub raw: String,
}

impl Received {
    /// A header's value (the first of that name), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The body, decoded when it was sent quoted-printable.
    pub fn body(&self) -> String {
        let body = self.raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if !qp {
            return body.to_owned();
        }
        let bytes = body.replace("=\r\n", "").into_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Whether Python's aiosmtpd is importable; otherwise why not.
fn available() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err("Python's aiosmtpd is not installed (pip install aiosmtpd)".into()),
        Err(e) => Err(format!("python3 cannot run: {e}")),
    }
}

/// A port of 127.0.0.1 free a moment ago (for a server started later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpSink {
    /// Starts a server on a free port; `None` (the test skips, saying
    /// why) when aiosmtpd is missing and CI did not require it.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_on(test, free_port())
    }

    /// [`SmtpSink::start`] on `port`.
    pub fn start_on(test: &str, port: u16) -> Option<Self> {
        if let Err(why) = available() {
            if std::env::var("RETAIN_REQUIRE_SMTP").as_deref() == Ok("1") {
                panic!("{test}: RETAIN_REQUIRE_SMTP=1 but {why}");
            }
            crate::skip(&format!("{test} (needs an SMTP server)"), &why);
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("smtp_sink.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let messages = dir.path().join("messages");
        std::fs::create_dir(&messages).unwrap();
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&messages)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP server did not start");
        Some(Self { port, dir, child })
    }

    fn messages_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("messages")
    }

    /// Every message received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        read_messages(&self.messages_dir())
    }
}

/// The `.eml` files of `dir`, in name order (an outbox, or a sink's).
pub fn read_messages(dir: &Path) -> Vec<Received> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let raw = std::fs::read_to_string(p).unwrap();
            let (to, raw) = match raw.strip_prefix("X-Envelope-To: ") {
                Some(rest) => {
                    let (to, raw) = rest.split_once("\r\n").unwrap();
                    (to.split(',').map(str::to_owned).collect(), raw.to_owned())
                }
                None => (Vec::new(), raw),
            };
            Received { to, raw }
        })
        .collect()
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
