//! Scenario 6: an OCI layout of a multi-layer image of incompressible
//! uncompressed tar layers, copied into and out of a registry by skopeo.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use sha2::{Digest as _, Sha256};

use crate::client::Credentials;
use crate::data::{mix, sha256_digest, Pieces};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// One skopeo copy may take at most this long.
const SKOPEO_DEADLINE: Duration = Duration::from_secs(900);

/// An image in an OCI layout on disk, tagged `v1`.
pub struct OciImage {
    pub dir: PathBuf,
}

/// Writes the layout: `layers` tar layers, each holding one file of
/// `layer_size` random bytes, a config, a manifest and index.json.
pub fn generate(dir: &Path, seed: u64, layers: usize, layer_size: u64) -> anyhow::Result<OciImage> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut descriptors = Vec::new();
    for i in 0..layers {
        let tmp = blobs.join(format!("layer-{i}.tmp"));
        let mut out = HashingWriter::new(File::create(&tmp)?);
        out.write_all(&tar_header(&format!("data/layer-{i}.bin"), layer_size))?;
        for piece in Pieces::new(mix(seed, i as u64), layer_size) {
            out.write_all(&piece)?;
        }
        let pad = (512 - layer_size % 512) % 512;
        out.write_all(&vec![0u8; pad as usize + 1024])?;
        let (size, digest) = out.finish()?;
        let hex = digest.trim_start_matches("sha256:");
        std::fs::rename(&tmp, blobs.join(hex))?;
        descriptors.push(serde_json::json!({
            "mediaType": OCI_LAYER_TAR,
            "digest": digest,
            "size": size,
        }));
    }
    let diff_ids: Vec<&serde_json::Value> = descriptors.iter().map(|d| &d["digest"]).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench.seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let config_digest = write_blob(&blobs, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    }))?;
    let manifest_digest = write_blob(&blobs, &manifest)?;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    }))?;
    std::fs::write(dir.join("index.json"), index)?;
    Ok(OciImage {
        dir: dir.to_path_buf(),
    })
}

fn write_blob(blobs: &Path, data: &[u8]) -> anyhow::Result<String> {
    let digest = sha256_digest(data);
    std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), data)?;
    Ok(digest)
}

struct HashingWriter {
    out: BufWriter<File>,
    hasher: Sha256,
    len: u64,
}

impl HashingWriter {
    fn new(file: File) -> HashingWriter {
        HashingWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            len: 0,
        }
    }

    fn finish(mut self) -> anyhow::Result<(u64, String)> {
        self.out.flush()?;
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        Ok((self.len, digest))
    }
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A ustar header for a regular file.
fn tar_header(name: &str, size: u64) -> [u8; 512] {
    fn octal(field: &mut [u8], value: u64) {
        let width = field.len() - 1;
        let text = format!("{value:0width$o}");
        field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
        field[width] = 0;
    }
    let mut h = [0u8; 512];
    let name = name.as_bytes();
    h[..name.len().min(99)].copy_from_slice(&name[..name.len().min(99)]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_704_067_200);
    h[148..156].fill(b' ');
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}

/// Which side of a copy the registry is on.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    Push,
    Pull,
}

/// Times one `skopeo copy` between the layout (or a fresh `out` layout)
/// and `<addr>/bench/img:v1`.
pub async fn skopeo_copy(
    direction: Direction,
    image: &OciImage,
    out: &Path,
    addr: std::net::SocketAddr,
    creds: Option<&Credentials>,
    authfile: &Path,
) -> anyhow::Result<f64> {
    let remote = format!("docker://{addr}/bench/img:v1");
    let local = format!("oci:{}:v1", image.dir.display());
    let fresh = format!("oci:{}:v1", out.display());
    let (tls, creds_flag, src, dst) = match direction {
        Direction::Push => ("--dest-tls-verify=false", "--dest-creds", local, remote),
        Direction::Pull => ("--src-tls-verify=false", "--src-creds", remote, fresh),
    };
    if !authfile.exists() {
        std::fs::write(authfile, br#"{"auths":{}}"#)?;
    }
    let mut cmd = tokio::process::Command::new("skopeo");
    cmd.arg("--insecure-policy")
        .arg("copy")
        .arg("--authfile")
        .arg(authfile)
        .arg(tls);
    if let Some(c) = creds {
        cmd.arg(creds_flag)
            .arg(format!("{}:{}", c.user, c.password));
    }
    cmd.arg(&src)
        .arg(&dst)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let child = cmd.spawn().context("starting skopeo")?;
    let output = tokio::time::timeout(SKOPEO_DEADLINE, child.wait_with_output())
        .await
        .map_err(|_| anyhow!("skopeo copy {src} {dst} timed out"))??;
    let secs = started.elapsed().as_secs_f64();
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        bail!(
            "skopeo copy {src} {dst} failed ({}): {}",
            output.status,
            err.trim()
        );
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_header_checksum() {
        let h = tar_header("a.bin", 1000);
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        let mut copy = h;
        copy[148..156].fill(b' ');
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(stored, sum);
        assert_eq!(&h[124..136], b"00000001750\0");
    }
}
