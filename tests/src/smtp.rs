//! A real SMTP server for the mail tests: aiosmtpd (PyPI, installed by
//! `.ci/run`) run by `smtp_server.py`, optionally requiring a login,
//! STARTTLS or TLS from the start with a certificate the test makes.
//! Every mail it accepts lands as a file the test reads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SCRIPT: &str = include_str!("smtp_server.py");

/// How the server is set up.
#[derive(Debug, Default, Clone)]
pub struct SmtpOptions {
    /// `(user, password)` every client must log in with.
    pub login: Option<(String, String)>,
    /// Require STARTTLS, with a self-signed certificate for 127.0.0.1.
    pub starttls: bool,
    /// TLS from the first byte, with the same kind of certificate.
    pub tls: bool,
}

/// One accepted mail.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope's recipients.
    pub rcpt_to: Vec<String>,
    /// Whether the session was encrypted.
    pub tls: bool,
    /// The login that sent it, if any.
    pub login: Option<String>,
    /// The message as sent (headers and body).
    pub raw: String,
}

impl Mail {
    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                return value;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_owned());
                }
            }
        }
        value
    }

    /// The body with its transfer encoding undone (lettre sends
    /// non-ASCII text as base64, long lines as quoted-printable).
    pub fn body(&self) -> String {
        use base64::Engine as _;
        let body = self.raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("a base64 body");
                String::from_utf8_lossy(&bytes).into_owned()
            }
            "quoted-printable" => {
                let joined = body.replace("=\r\n", "");
                let bytes = joined.as_bytes();
                let mut out = Vec::with_capacity(bytes.len());
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'=' && i + 2 < bytes.len() {
                        if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                            out.push(b);
                            i += 3;
                            continue;
                        }
                    }
                    out.push(bytes[i]);
                    i += 1;
                }
                String::from_utf8_lossy(&out).into_owned()
            }
            _ => body.to_owned(),
        }
    }
}

pub struct Smtp {
    port: u16,
    dir: TempDir,
    child: Child,
    /// The certificate the server presents (TLS modes).
    pub cert: Option<PathBuf>,
}

impl Smtp {
    pub fn start(options: SmtpOptions) -> Smtp {
        let dir = tempfile::Builder::new()
            .prefix("berth-smtp-")
            .tempdir()
            .expect("temp dir");
        let script = dir.path().join("smtp_server.py");
        std::fs::write(&script, SCRIPT).expect("write the SMTP server script");
        let out = dir.path().join("mail");
        std::fs::create_dir_all(&out).expect("mail dir");
        let port = crate::server::free_port();
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(port.to_string()).arg(&out);
        if let Some((user, password)) = &options.login {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        let mut cert = None;
        if options.starttls || options.tls {
            let (c, k) = self_signed(dir.path());
            cmd.arg(if options.tls { "--tls" } else { "--starttls" })
                .arg(&c)
                .arg(&k);
            cert = Some(c);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 smtp_server.py (needs aiosmtpd: pip install aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the SMTP server's first line");
        assert_eq!(line.trim(), "READY", "the SMTP server did not start");
        Smtp {
            port,
            dir,
            child,
            cert,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every mail accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        let out = self.dir.path().join("mail");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&out)
            .expect("read the mail dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| parse(p)).collect()
    }

    /// Waits until `count` mails satisfy `which`; returns them.
    pub fn wait_for(
        &self,
        what: &str,
        count: usize,
        within: Duration,
        which: impl Fn(&Mail) -> bool,
    ) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        loop {
            let got: Vec<Mail> = self.mails().into_iter().filter(&which).collect();
            if got.len() >= count {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {count} mails within {within:?}; all: {:?}",
                got.len(),
                self.mails()
            );
            std::thread::sleep(crate::server::POLL);
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(path: &Path) -> Mail {
    let text = std::fs::read_to_string(path).expect("read a mail");
    let mut lines = text.splitn(4, "\r\n");
    let mut field = |name: &str| {
        let line = lines.next().unwrap_or("");
        line.strip_prefix(name)
            .unwrap_or_else(|| panic!("{}: no {name} line", path.display()))
            .to_owned()
    };
    let rcpt = field("X-Rcpt-To: ");
    let tls = field("X-Tls: ") == "True";
    let login = field("X-Auth: ");
    Mail {
        rcpt_to: rcpt.split(',').map(str::to_owned).collect(),
        tls,
        login: (login != "-").then_some(login),
        raw: lines.next().unwrap_or("").to_owned(),
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, made by openssl.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("smtp.crt"), dir.join("smtp.key"));
    crate::tools::run_ok(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            &key.to_string_lossy(),
            "-out",
            &cert.to_string_lossy(),
        ],
        &[],
        None,
    );
    (cert, key)
}
