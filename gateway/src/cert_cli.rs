//! `berth cert init`: a small local CA and a server certificate for the
//! registry's names, written to `<data_dir>/tls/`, and the exact steps that
//! make docker, podman, skopeo and the system trust it. `berth serve` uses
//! these files when `[tls]` is not configured, so two commands give a
//! registry that clients verify.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// Where `cert init` writes, under the data directory.
pub fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// The server certificate and key `cert init` writes.
pub fn default_files(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = tls_dir(data_dir);
    (dir.join("server.crt"), dir.join("server.key"))
}

/// The current year, for validity periods (rcgen wants calendar dates).
fn this_year() -> i32 {
    humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..4]
        .parse()
        .unwrap_or(2025)
}

fn write(path: &Path, content: &str, private: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(content.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Creates the CA and server certificate; returns what to print.
pub fn init(
    data_dir: &Path,
    hostnames: &[String],
    ips: &[IpAddr],
    port: u16,
    force: bool,
) -> Result<String, String> {
    if hostnames.is_empty() && ips.is_empty() {
        return Err("give at least one --hostname (or --ip) that clients will use".into());
    }
    let dir = tls_dir(data_dir);
    let ca_path = dir.join("ca.crt");
    let (cert_path, key_path) = default_files(data_dir);
    if ca_path.exists() && !force {
        return Err(format!(
            "{} already exists: clients may trust it. Use --force to replace the CA \
             and certificate (clients must then trust the new ca.crt)",
            ca_path.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let year = this_year();
    let err = |e: rcgen::Error| format!("creating the certificates: {e}");

    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut ca_dn = DistinguishedName::new();
    ca_dn.push(DnType::CommonName, "berth local CA");
    ca.distinguished_name = ca_dn;
    ca.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    ca.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;

    let mut server = CertificateParams::new(hostnames.to_vec()).map_err(err)?;
    server
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let mut dn = DistinguishedName::new();
    let cn = hostnames
        .first()
        .cloned()
        .or_else(|| ips.first().map(IpAddr::to_string))
        .unwrap_or_default();
    dn.push(DnType::CommonName, cn);
    server.distinguished_name = dn;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    server.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    let server_key = KeyPair::generate().map_err(err)?;
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(err)?;

    write(&ca_path, &ca_cert.pem(), false)?;
    write(&dir.join("ca.key"), &ca_key.serialize_pem(), true)?;
    write(&cert_path, &server_cert.pem(), false)?;
    write(&key_path, &server_key.serialize_pem(), true)?;

    let names: Vec<String> = hostnames
        .iter()
        .cloned()
        .chain(ips.iter().map(IpAddr::to_string))
        .collect();
    let first = &names[0];
    let ca = ca_path.display();
    Ok(format!(
        "berth: wrote a local CA ({ca}) and a certificate for {names} ({cert})\n\
         \n\
         1. Start berth; with no [tls] in the config it serves HTTPS with these files:\n\
         \x20    berth serve\n\
         \n\
         2. Make clients trust the CA (once per client machine), for {first}:{port}:\n\
         \x20    docker:          sudo mkdir -p /etc/docker/certs.d/{first}:{port} && sudo cp {ca} /etc/docker/certs.d/{first}:{port}/ca.crt\n\
         \x20    podman, skopeo,\n\
         \x20    buildah, CRI-O:  sudo mkdir -p /etc/containers/certs.d/{first}:{port} && sudo cp {ca} /etc/containers/certs.d/{first}:{port}/ca.crt\n\
         \x20                     (rootless: ~/.config/containers/certs.d/{first}:{port}/ca.crt)\n\
         \x20    containerd:      sudo mkdir -p /etc/containerd/certs.d/{first}:{port} && sudo cp {ca} /etc/containerd/certs.d/{first}:{port}/ca.crt\n\
         \x20    system (curl, oras, helm): sudo cp {ca} /usr/local/share/ca-certificates/berth-ca.crt && sudo update-ca-certificates\n\
         \n\
         Then: docker login {first}:{port}   (no --insecure-registry, no --tls-verify=false)\n\
         Keep {dir}/ca.key private: it can sign certificates your clients trust.",
        names = names.join(", "),
        cert = cert_path.display(),
        dir = dir.display(),
    ))
}
