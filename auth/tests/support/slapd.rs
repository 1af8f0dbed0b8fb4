//! A throwaway OpenLDAP server (Debian's `slapd`) for tests, plus a server
//! that accepts connections and never answers.
//!
//! Needs the Debian packages `slapd` and `ldap-utils` (`ldapadd`,
//! `ldapsearch`), and `openssl` for [`Slapd::start_with_tls`]. Nothing from
//! berth: other test crates can include this file with
//! `#[path = "../../auth/tests/support/slapd.rs"] mod slapd;`.
//!
//! Each [`Slapd`] is its own process on free ports with its own temp dir
//! (removed on drop), started with `slapd -d stats -h ldap://127.0.0.1:<port>/
//! -f <slapd.conf>`. It is never given `-u`, so it keeps the caller's user,
//! root included. The data is added online with `ldapadd` so the memberof
//! overlay fills in `memberOf`, as it would in production.
//!
//! The directory it holds (every password is the uid plus `-secret`):
//!
//! ```text
//! dc=example,dc=org                      BASE_DN
//!   cn=admin                             rootdn, ADMIN_PASSWORD (not an entry)
//!   cn=reader                            READER_DN / READER_PASSWORD: the
//!                                        service account for searches
//!   ou=people                            PEOPLE_DN
//!     uid=alice  alice-secret  alice@example.org  "Alice Liddell"
//!                              member of developers, registry-admins
//!     uid=bob    bob-secret    bob@example.org    "Bob Builder"
//!                              member of developers
//!     uid=carol  carol-secret  carol@example.org  "Carol Danvers"
//!                              in no group
//!   ou=groups                            GROUPS_DN
//!     cn=developers       groupOfNames: alice, bob      DEVELOPERS_DN
//!     cn=registry-admins  groupOfNames: alice           ADMINS_DN
//! ```
//!
//! Users are `inetOrgPerson` (filter `(objectClass=inetOrgPerson)` selects
//! exactly the three), groups `groupOfNames`; users carry `memberOf`.
//! Anyone, anonymous included, may read everything but `userPassword`.

#![allow(dead_code)]

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SLAPD: &str = "/usr/sbin/slapd";
pub const BASE_DN: &str = "dc=example,dc=org";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=org";
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const READER_DN: &str = "cn=reader,dc=example,dc=org";
pub const READER_PASSWORD: &str = "reader-secret";
pub const DEVELOPERS_DN: &str = "cn=developers,ou=groups,dc=example,dc=org";
pub const ADMINS_DN: &str = "cn=registry-admins,ou=groups,dc=example,dc=org";

/// A user of the test directory.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub uid: &'static str,
    pub password: &'static str,
    pub dn: &'static str,
    pub mail: &'static str,
    pub display_name: &'static str,
    /// Group DNs, as written in the LDIF.
    pub groups: &'static [&'static str],
}

pub const ALICE: User = User {
    uid: "alice",
    password: "alice-secret",
    dn: "uid=alice,ou=people,dc=example,dc=org",
    mail: "alice@example.org",
    display_name: "Alice Liddell",
    groups: &[DEVELOPERS_DN, ADMINS_DN],
};
pub const BOB: User = User {
    uid: "bob",
    password: "bob-secret",
    dn: "uid=bob,ou=people,dc=example,dc=org",
    mail: "bob@example.org",
    display_name: "Bob Builder",
    groups: &[DEVELOPERS_DN],
};
pub const CAROL: User = User {
    uid: "carol",
    password: "carol-secret",
    dn: "uid=carol,ou=people,dc=example,dc=org",
    mail: "carol@example.org",
    display_name: "Carol Danvers",
    groups: &[],
};
pub const USERS: &[User] = &[ALICE, BOB, CAROL];

/// How long start-up may take before the fixture gives up and shows the
/// log. Generous: test binaries start many of these at once on small CI
/// machines.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// A free port can be taken by someone else between our probe and slapd's
/// bind; then we try again on another.
const START_ATTEMPTS: usize = 5;

/// A running slapd; killed and its directory removed on drop.
pub struct Slapd {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    tls_port: Option<u16>,
}

impl Slapd {
    /// A server on `ldap://127.0.0.1:<port>/` holding the directory above.
    pub fn start() -> Slapd {
        Slapd::start_inner(false)
    }

    /// Also TLS: StartTLS on [`Slapd::url`] and `ldaps://` on
    /// [`Slapd::ldaps_url`], with a self-signed certificate for `localhost`
    /// and `127.0.0.1` ([`Slapd::certificate`]) that no system trusts.
    pub fn start_with_tls() -> Slapd {
        Slapd::start_inner(true)
    }

    fn start_inner(tls: bool) -> Slapd {
        let dir = unique_temp_dir();
        fs::create_dir_all(dir.join("db")).expect("create slapd temp dir");
        if tls {
            make_certificate(&dir);
        }
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let tls_port = tls.then(free_port);
            let mut slapd = Slapd {
                child: None,
                dir: dir.clone(),
                port,
                tls_port,
            };
            fs::write(dir.join("slapd.conf"), slapd.config()).expect("write slapd.conf");
            slapd.spawn();
            match slapd.wait_ready() {
                Ok(()) => {
                    slapd.add(DATA);
                    return slapd;
                }
                Err(log) => {
                    // The port was taken under us: try another. Anything
                    // else is a broken setup, and more attempts won't help.
                    slapd.kill();
                    if !log.contains("Address already in use") {
                        panic!("slapd did not start; its log:\n{log}");
                    }
                    last_log = log;
                    // Don't let the drop below remove the shared dir.
                    slapd.dir = PathBuf::new();
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("slapd found no free port in {START_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// `ldap://127.0.0.1:<port>` (plain, and StartTLS with TLS).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:<port>` when started with TLS.
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("ldaps://127.0.0.1:{port}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PEM certificate (self-signed) when started with TLS.
    pub fn certificate(&self) -> Option<PathBuf> {
        self.tls_port.map(|_| self.dir.join("cert.pem"))
    }

    /// Adds entries (LDIF, `changetype: add` implied) as the rootdn.
    pub fn add(&self, ldif: &str) {
        let file = self.dir.join(format!("add-{}.ldif", next_id()));
        fs::write(&file, ldif).expect("write LDIF");
        let output = run(Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
                "-f",
            ])
            .arg(&file));
        if !output.status.success() {
            panic!(
                "ldapadd failed ({}): {}{}\nslapd log:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                self.log()
            );
        }
    }

    /// Deletes an entry as the rootdn.
    pub fn delete(&self, dn: &str) {
        let output = run(Command::new("ldapdelete").args([
            "-x",
            "-H",
            &self.url(),
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            dn,
        ]));
        assert!(
            output.status.success(),
            "ldapdelete {dn} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    /// Kills the server (the directory then refuses connections). The
    /// temp dir stays until drop.
    pub fn stop(&mut self) {
        self.kill();
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Everything slapd logged so far (`-d stats`: one line per connection
    /// and operation, such as `conn=1001 op=0 BIND dn="..." method=128`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// Simple binds to `dn` so far, successful or not; the DN is compared
    /// as slapd logs it (normalized: lowercase, no spaces).
    pub fn bind_count(&self, dn: &str) -> usize {
        let wanted = format!("BIND dn=\"{dn}\" method=128").to_ascii_lowercase();
        self.log()
            .lines()
            .filter(|line| line.to_ascii_lowercase().contains(&wanted))
            .count()
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(" ACCEPT from "))
            .count()
    }

    /// Connections closed so far (by either side; `closed` or `closed
    /// (connection lost)`).
    pub fn closed_count(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(" fd=") && line.contains(" closed"))
            .count()
    }

    fn config(&self) -> String {
        let dir = self.dir.display();
        let tls = if self.tls_port.is_some() {
            format!("TLSCertificateFile {dir}/cert.pem\nTLSCertificateKeyFile {dir}/key.pem\n")
        } else {
            String::new()
        };
        format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             pidfile {dir}/slapd.pid\n\
             argsfile {dir}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             {tls}\
             database mdb\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {dir}/db\n\
             maxsize 16777216\n\
             overlay memberof\n\
             memberof-group-oc groupOfNames\n\
             memberof-member-ad member\n\
             memberof-memberof-ad memberOf\n\
             memberof-refint TRUE\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by * read\n"
        )
    }

    fn spawn(&mut self) {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(port) = self.tls_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{port}/"));
        }
        let log = fs::File::create(self.dir.join("slapd.log")).expect("create slapd log");
        let log_err = log.try_clone().expect("clone log handle");
        let child = Command::new(SLAPD)
            // -d keeps slapd in the foreground (so it is our child to kill)
            // and sends the stats log to stderr, i.e. the log file.
            .args(["-d", "stats", "-h", &urls, "-f"])
            .arg(self.dir.join("slapd.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SLAPD} (apt-get install slapd): {e}"));
        self.child = Some(child);
    }

    /// Polls until the port takes connections and an anonymous search of
    /// the root DSE succeeds; `Err(log)` if slapd exits or the deadline
    /// passes.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if !self.is_running() {
                return Err(self.log());
            }
            let listening =
                TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok();
            if listening && self.answers() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {START_DEADLINE:?}\n{}",
                    self.log()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        run(Command::new("ldapsearch").args([
            "-x",
            "-H",
            &self.url(),
            "-o",
            "nettimeout=2",
            "-b",
            "",
            "-s",
            "base",
            "namingContexts",
        ]))
        .status
        .success()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: either way it is gone after wait.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (nothing listens on it
/// unless someone takes it in between).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind an ephemeral port")
}

/// A TCP server that accepts every connection and never sends a byte: a
/// directory that hangs. Connections are held open until drop.
pub struct SilentServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind silent server");
        let address = listener.local_addr().expect("silent server address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => held.push(stream),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            }
        });
        SilentServer {
            address,
            stop,
            thread: Some(thread),
        }
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `ldap://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ldap://{}", self.address)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?} (apt-get install ldap-utils): {e}"))
}

fn next_id() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn unique_temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "berth-slapd-{}-{}-{nanos}",
        std::process::id(),
        next_id()
    ))
}

/// A P-256 self-signed server certificate for localhost and 127.0.0.1:
/// TLS works, and verification against the system roots fails with an
/// unknown issuer.
fn make_certificate(dir: &Path) {
    let output = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            // Not CN=localhost: Debian's ssl-cert puts a snakeoil
            // certificate with that subject into /etc/ssl/certs, which
            // rustls-native-certs reads as a trusted root.
            "/CN=berth-test-slapd",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            // openssl marks a self-signed certificate as a CA by default,
            // which TLS clients reject for a server before even asking
            // whether they trust it.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem")));
    if !output.status.success() {
        panic!(
            "openssl could not make a test certificate: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The entries, people before groups: the memberof overlay only records
/// membership of entries that already exist.
const DATA: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: cn=reader,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: reader-secret

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
displayName: Alice Liddell
mail: alice@example.org
userPassword: alice-secret

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
displayName: Bob Builder
mail: bob@example.org
userPassword: bob-secret

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol Danvers
sn: Danvers
displayName: Carol Danvers
mail: carol@example.org
userPassword: carol-secret

dn: cn=developers,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: developers
member: uid=alice,ou=people,dc=example,dc=org
member: uid=bob,ou=people,dc=example,dc=org

dn: cn=registry-admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: registry-admins
member: uid=alice,ou=people,dc=example,dc=org
";
