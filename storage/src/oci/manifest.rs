//! Manifest parsing: just enough structure to check references, find the
//! subject and answer the referrers API. The bytes themselves are stored
//! exactly as received.

use serde::Deserialize;

use crate::error::StorageError;
use crate::oci::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Manifests larger than this are refused with 413: the spec's suggested
/// floor, and what distribution enforces.
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// Descriptors (config, layers, or an index's manifests) one manifest may
/// list. Every one is checked and recorded while the push holds the
/// database's write lock; real images have tens to hundreds of layers
/// (Docker caps them at 127), so this only stops abuse.
pub const MAX_MANIFEST_REFERENCES: usize = 10_000;

/// The manifest kinds berth stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerManifestList,
}

impl ManifestKind {
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::DockerManifest => DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    fn from_media_type(mt: &str) -> Result<Option<ManifestKind>, StorageError> {
        Ok(Some(match mt {
            OCI_MANIFEST => ManifestKind::OciManifest,
            OCI_INDEX => ManifestKind::OciIndex,
            DOCKER_MANIFEST => ManifestKind::DockerManifest,
            DOCKER_MANIFEST_LIST => ManifestKind::DockerManifestList,
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => {
                return Err(StorageError::ManifestSchema1Unsupported)
            }
            _ => return Ok(None),
        }))
    }

    fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::OciIndex | ManifestKind::DockerManifestList
        )
    }
}

/// A descriptor as it appears in manifests and in the referrers response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
    // Schema 1 manifests carry these; used only to recognise and refuse them.
    fs_layers: Option<serde_json::Value>,
}

/// What the registry needs to know about a manifest it is about to store.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub kind: ManifestKind,
    /// Blobs (config and layers) that must exist in the repository.
    pub blobs: Vec<Digest>,
    /// Each blob's size as its descriptor states it (same order).
    pub blob_sizes: Vec<u64>,
    /// Child manifests (of an index) that must exist in the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, or for image manifests the config's media type, as
    /// the referrers API reports it.
    pub artifact_type: Option<String>,
    /// The `annotations` object, re-serialised, for referrers descriptors.
    pub annotations: Option<String>,
}

/// Drops items with a repeated digest, keeping the first of each in place.
fn dedup<T>(items: &mut Vec<T>, digest: impl Fn(&T) -> &Digest) {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items.retain(|i| seen.insert(digest(i).clone()));
}

/// Parses manifest bytes sent with `content_type`.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<ParsedManifest, StorageError> {
    let header_kind = match content_type.map(base_media_type) {
        Some(ct) => ManifestKind::from_media_type(ct)?,
        None => None,
    };
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| StorageError::ManifestInvalid(format!("not a valid manifest: {e}")))?;
    if raw.fs_layers.is_some() || raw.schema_version == Some(1) {
        return Err(StorageError::ManifestSchema1Unsupported);
    }
    let body_kind = match raw.media_type.as_deref() {
        Some(mt) => match ManifestKind::from_media_type(mt)? {
            Some(kind) => Some(kind),
            None => {
                return Err(StorageError::ManifestInvalid(format!(
                    "unsupported manifest mediaType `{mt}`"
                )))
            }
        },
        None => None,
    };
    let kind = match (header_kind, body_kind) {
        (Some(h), Some(b)) if h != b => {
            return Err(StorageError::ManifestInvalid(format!(
                "Content-Type `{}` does not match the manifest's mediaType `{}`",
                h.media_type(),
                b.media_type()
            )))
        }
        (Some(k), _) | (None, Some(k)) => k,
        // Neither says: an OCI manifest or index by shape (mediaType is
        // optional in OCI documents).
        (None, None) if raw.manifests.is_some() => ManifestKind::OciIndex,
        (None, None) => ManifestKind::OciManifest,
    };
    if raw.schema_version != Some(2) {
        return Err(StorageError::ManifestInvalid(
            "schemaVersion must be 2".to_owned(),
        ));
    }

    let descriptor = |d: &RawDescriptor| -> Result<Digest, StorageError> {
        if d.size < 0 {
            return Err(StorageError::ManifestInvalid(format!(
                "descriptor {} has a negative size",
                d.digest
            )));
        }
        d.digest
            .parse::<Digest>()
            .map_err(|e| StorageError::ManifestInvalid(format!("bad descriptor digest: {e}")))
    };

    let listed = raw.manifests.as_ref().map_or(0, Vec::len)
        + raw.layers.as_ref().map_or(0, Vec::len)
        + usize::from(raw.config.is_some());
    if listed > MAX_MANIFEST_REFERENCES {
        return Err(StorageError::ManifestInvalid(format!(
            "the manifest lists {listed} descriptors; at most {MAX_MANIFEST_REFERENCES} are accepted (split the content into several images, or an index of them)"
        )));
    }
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    if kind.is_index() {
        let list = raw.manifests.as_ref().ok_or_else(|| {
            StorageError::ManifestInvalid("an index needs a `manifests` array".to_owned())
        })?;
        for d in list {
            manifests.push(descriptor(d)?);
        }
    } else {
        let config = raw.config.as_ref().ok_or_else(|| {
            StorageError::ManifestInvalid("an image manifest needs a `config` descriptor".into())
        })?;
        blobs.push((descriptor(config)?, config.size as u64));
        let layers = raw.layers.as_ref().ok_or_else(|| {
            StorageError::ManifestInvalid("an image manifest needs a `layers` array".into())
        })?;
        for d in layers {
            let digest = descriptor(d)?;
            // Non-distributable (foreign) layers live elsewhere by design;
            // clients never push them, so they cannot be required here.
            if !d.media_type.as_deref().is_some_and(is_non_distributable) {
                blobs.push((digest, d.size as u64));
            }
        }
    }
    // A digest listed twice (the same layer repeated) is one reference.
    dedup(&mut blobs, |(d, _)| d);
    let (blobs, blob_sizes): (Vec<Digest>, Vec<u64>) = blobs.into_iter().unzip();
    dedup(&mut manifests, |d| d);
    let subject = raw.subject.as_ref().map(descriptor).transpose()?;
    let artifact_type = raw.artifact_type.clone().or_else(|| {
        if kind.is_index() {
            None
        } else {
            raw.config.as_ref().and_then(|c| c.media_type.clone())
        }
    });
    let annotations = raw
        .annotations
        .as_ref()
        .map(|a| serde_json::Value::Object(a.clone()).to_string());
    Ok(ParsedManifest {
        kind,
        blobs,
        blob_sizes,
        manifests,
        subject,
        artifact_type,
        annotations,
    })
}

fn is_non_distributable(media_type: &str) -> bool {
    media_type.contains(".nondistributable.") || media_type.contains(".foreign.")
}

/// `application/json; charset=utf-8` -> `application/json`.
pub fn base_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or(ct).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":0}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{D1}","size":0}}]{extra}}}"#
        )
    }

    #[test]
    fn image_manifest_references() {
        let m = parse(Some(OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::OciManifest);
        // The config and the layer share a digest: one reference.
        assert_eq!(m.blobs.len(), 1);
        assert!(m.subject.is_none());
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn artifact_with_subject() {
        let extra = format!(
            r#","artifactType":"application/x-sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":1}},"annotations":{{"a":"b"}}"#
        );
        let m = parse(None, image(&extra).as_bytes()).unwrap();
        assert_eq!(m.subject.unwrap().to_string(), D1);
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(m.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }

    #[test]
    fn references_are_deduplicated_and_capped() {
        let layer = |i: usize| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{:064x}","size":1}}"#,
                i % 3
            )
        };
        let manifest = |layers: usize| {
            let list: Vec<String> = (0..layers).map(layer).collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{D1}","size":0}},"layers":[{}]}}"#,
                list.join(",")
            )
        };
        let m = parse(None, manifest(MAX_MANIFEST_REFERENCES - 1).as_bytes()).unwrap();
        assert_eq!(m.blobs.len(), 4, "config and three distinct layers");
        match parse(None, manifest(MAX_MANIFEST_REFERENCES).as_bytes()) {
            Err(StorageError::ManifestInvalid(msg)) => {
                assert!(msg.contains("10000"), "{msg}")
            }
            other => panic!("over the cap: {other:?}"),
        }
    }

    #[test]
    fn index_children() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D1}","size":3}}]}}"#
        );
        let m = parse(Some(OCI_INDEX), body.as_bytes()).unwrap();
        assert_eq!(m.kind, ManifestKind::OciIndex);
        assert_eq!(m.manifests.len(), 1);
        assert!(m.blobs.is_empty());
    }

    #[test]
    fn refuses_schema1_and_garbage() {
        assert!(matches!(
            parse(Some(DOCKER_SCHEMA1_SIGNED), b"{}"),
            Err(StorageError::ManifestSchema1Unsupported)
        ));
        assert!(matches!(
            parse(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
            Err(StorageError::ManifestSchema1Unsupported)
        ));
        assert!(matches!(
            parse(Some(OCI_MANIFEST), b"not json"),
            Err(StorageError::ManifestInvalid(_))
        ));
        assert!(matches!(
            parse(Some(OCI_INDEX), image("").as_bytes()),
            Err(StorageError::ManifestInvalid(_))
        ));
    }
}
