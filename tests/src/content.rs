//! Test content: random bytes, real tar.gz layers, configs, manifests and
//! indexes, with their digests.

use std::io::Write;

use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256, Sha512};

use crate::tar;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn sha512_digest(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut buf);
    buf
}

/// A short random lowercase hex string, for unique names.
pub fn random_suffix() -> String {
    hex::encode(random_bytes(4))
}

/// A digest of random content that no test ever pushes.
pub fn unknown_digest() -> String {
    sha256_digest(&random_bytes(64))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// Content with its digest and media type: a layer, config or manifest.
#[derive(Clone, Debug)]
pub struct Blob {
    pub data: Vec<u8>,
    pub digest: String,
    pub media_type: String,
}

impl Blob {
    pub fn new(data: Vec<u8>, media_type: &str) -> Blob {
        let digest = sha256_digest(&data);
        Blob {
            data,
            digest,
            media_type: media_type.to_string(),
        }
    }

    /// Random bytes, typed as an OCI gzip layer.
    pub fn random(len: usize) -> Blob {
        Blob::new(random_bytes(len), OCI_LAYER_GZIP)
    }

    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// The OCI descriptor of this content.
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size(),
        })
    }
}

/// A gzip-compressed tar layer and the digest of its uncompressed tar.
#[derive(Clone, Debug)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
}

/// A real tar.gz layer of `files` files of `file_size` random bytes each.
pub fn random_layer(files: usize, file_size: usize) -> Layer {
    let dir = format!("data-{}/", random_suffix());
    let contents: Vec<(String, Vec<u8>)> = (0..files)
        .map(|i| (format!("{dir}file-{i}.bin"), random_bytes(file_size)))
        .collect();
    let mut entries = vec![tar::Entry {
        path: &dir,
        data: None,
    }];
    entries.extend(contents.iter().map(|(path, data)| tar::Entry {
        path,
        data: Some(data),
    }));
    let archive = tar::archive(&entries);
    Layer {
        diff_id: sha256_digest(&archive),
        blob: Blob::new(gzip(&archive), OCI_LAYER_GZIP),
    }
}

/// An OCI image config for layers with these diff ids.
pub fn config_blob(diff_ids: &[String]) -> Blob {
    let config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Labels": {"berth.test": random_suffix()},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| json!({"created_by": "berth-tests"})).collect::<Vec<_>>(),
    });
    Blob::new(to_json(&config), OCI_CONFIG)
}

/// An OCI image manifest for this config and these layers.
pub fn image_manifest(config: &Blob, layers: &[Blob]) -> Vec<u8> {
    to_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    }))
}

/// A Docker schema2 manifest; the config and layers must carry Docker media
/// types.
pub fn docker_manifest(config: &Blob, layers: &[Blob]) -> Vec<u8> {
    to_json(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    }))
}

/// An OCI index (or, with `DOCKER_LIST`, a Docker manifest list) of these
/// manifests, one per architecture in `archs`.
pub fn image_index(media_type: &str, manifests: &[&Blob], archs: &[&str]) -> Vec<u8> {
    let entries: Vec<Value> = manifests
        .iter()
        .zip(archs)
        .map(|(m, arch)| {
            let mut d = m.descriptor();
            d["platform"] = json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    to_json(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": entries,
    }))
}

/// The empty config `{}` that artifacts use.
pub fn empty_config() -> Blob {
    Blob::new(b"{}".to_vec(), OCI_EMPTY)
}

/// An artifact manifest: `artifactType`, the empty config, these layers and
/// an optional subject descriptor.
pub fn artifact_manifest(artifact_type: &str, layers: &[Blob], subject: Option<&Blob>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_config().descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        "annotations": {"org.example.id": random_suffix()},
    });
    if let Some(subject) = subject {
        m["subject"] = subject.descriptor();
    }
    to_json(&m)
}

/// Serializes with two-space indentation: the bytes differ from compact
/// JSON, so a registry that re-serializes manifests is caught.
pub fn to_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("serialize json")
}

/// A complete image: layers, config and its manifest.
#[derive(Clone, Debug)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: Blob,
    pub manifest: Blob,
}

impl Image {
    /// An OCI image of `layers` random tar.gz layers (a few small files each).
    pub fn random(layers: usize) -> Image {
        Image::with_layers((0..layers).map(|_| random_layer(3, 2048)).collect())
    }

    pub fn with_layers(layers: Vec<Layer>) -> Image {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let config = config_blob(&diff_ids);
        let layer_blobs: Vec<Blob> = layers.iter().map(|l| l.blob.clone()).collect();
        let manifest = Blob::new(image_manifest(&config, &layer_blobs), OCI_MANIFEST);
        Image {
            layers,
            config,
            manifest,
        }
    }

    /// The same content typed as a Docker schema2 image.
    pub fn random_docker(layers: usize) -> Image {
        let mut layers: Vec<Layer> = (0..layers).map(|_| random_layer(2, 1024)).collect();
        for layer in &mut layers {
            layer.blob.media_type = DOCKER_LAYER_GZIP.to_string();
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let mut config = config_blob(&diff_ids);
        config.media_type = DOCKER_CONFIG.to_string();
        let layer_blobs: Vec<Blob> = layers.iter().map(|l| l.blob.clone()).collect();
        let manifest = Blob::new(docker_manifest(&config, &layer_blobs), DOCKER_MANIFEST);
        Image {
            layers,
            config,
            manifest,
        }
    }

    /// Every blob the manifest references: the layers, then the config.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut blobs: Vec<&Blob> = self.layers.iter().map(|l| &l.blob).collect();
        blobs.push(&self.config);
        blobs
    }
}
