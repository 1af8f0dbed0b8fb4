//! The OCI protocol types. Once a request is parsed into these, nothing
//! downstream handles plain strings for names, tags or digests.

pub mod digest;
pub mod manifest;
pub mod name;

pub use digest::{Algorithm, Digest, Hasher};
pub use manifest::{ManifestKind, ParsedManifest, MAX_MANIFEST_SIZE};
pub use name::{ProjectName, Reference, RepoName, Tag};
