//! Artifacts, subjects and the referrers API (distribution-spec v1.1).
#![allow(clippy::unwrap_used)]

use berth_tests::content::{
    artifact_manifest, random_suffix, to_json, unknown_digest, OCI_INDEX, OCI_MANIFEST,
};
use berth_tests::registry::{assert_error, describe, header};
use berth_tests::{Api, Berth, Blob, Image, Registry};
use serde_json::{json, Value};

const SBOM: &str = "application/vnd.example.sbom.v1";
const SIGNATURE: &str = "application/vnd.example.signature.v1";

fn setup() -> (Berth, Registry) {
    let berth = Berth::start();
    // Pushes go to existing projects only. `never` stays empty: its
    // repositories are unknown (404), not in a missing project (403).
    Api::admin(&berth).create_projects(&["team", "never"]);
    let registry = berth.registry();
    (berth, registry)
}

/// Pushes an artifact of `artifact_type` about `subject` (by digest) and
/// asserts the OCI-Subject header.
fn push_artifact(registry: &Registry, repo: &str, artifact_type: &str, subject: &Blob) -> Blob {
    let layer = Blob::new(
        format!("{{\"payload\":\"{}\"}}", random_suffix()).into_bytes(),
        "application/json",
    );
    registry.push_blob(repo, &layer);
    registry.push_blob(repo, &berth_tests::content::empty_config());
    let manifest = Blob::new(
        artifact_manifest(artifact_type, &[layer], Some(subject)),
        OCI_MANIFEST,
    );
    let resp = registry.put_manifest(repo, &manifest.digest, OCI_MANIFEST, &manifest.data);
    assert_eq!(resp.status(), 201, "PUT artifact: {}", describe(resp));
    assert_eq!(
        header(&resp, "oci-subject").as_deref(),
        Some(subject.digest.as_str()),
        "OCI-Subject of an artifact PUT"
    );
    manifest
}

fn referrers(
    registry: &Registry,
    repo: &str,
    digest: &str,
    query: &str,
) -> (Value, Option<String>) {
    let resp = registry
        .http()
        .get(registry.url(&format!("/v2/{repo}/referrers/{digest}{query}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "GET referrers {digest}{query}");
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some(OCI_INDEX),
        "Content-Type of the referrers response"
    );
    let filters = header(&resp, "oci-filters-applied");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], OCI_INDEX);
    assert!(body["manifests"].is_array(), "manifests array: {body}");
    (body, filters)
}

fn digests(index: &Value) -> Vec<String> {
    let mut d: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    d.sort();
    d
}

fn entry<'a>(index: &'a Value, digest: &str) -> &'a Value {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == digest)
        .unwrap_or_else(|| panic!("{digest} not in referrers {index}"))
}

#[test]
fn artifact_with_subject_is_stored_exactly_and_answers_oci_subject() {
    let (_berth, registry) = setup();
    let repo = "team/art";
    let image = Image::random(1);
    registry.push_image(repo, "v1", &image);
    let artifact = push_artifact(&registry, repo, SBOM, &image.manifest);
    registry.assert_manifest(repo, &artifact.digest, &artifact);
}

#[test]
fn referrers_list_and_artifact_type_filter() {
    let (_berth, registry) = setup();
    let repo = "team/refs";
    let image = Image::random(1);
    registry.push_image(repo, "v1", &image);
    let sbom = push_artifact(&registry, repo, SBOM, &image.manifest);
    let sig = push_artifact(&registry, repo, SIGNATURE, &image.manifest);

    // An artifact without artifactType: the config's media type stands in.
    let config = Blob::new(
        b"{\"kind\":\"attestation\"}".to_vec(),
        "application/vnd.example.attestation.config.v1+json",
    );
    registry.push_blob(repo, &config);
    let attestation = Blob::new(
        to_json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [config.descriptor()],
            "subject": image.manifest.descriptor(),
        })),
        OCI_MANIFEST,
    );
    registry.push_manifest(repo, &attestation.digest, &attestation);

    // An index can refer to a subject too.
    let index = Blob::new(
        to_json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": SBOM,
            "manifests": [sbom.descriptor()],
            "subject": image.manifest.descriptor(),
            "annotations": {"org.example.kind": "index"},
        })),
        OCI_INDEX,
    );
    registry.push_manifest(repo, &index.digest, &index);

    let (all, filters) = referrers(&registry, repo, &image.manifest.digest, "");
    assert!(
        filters.is_none(),
        "no filter was asked for, OCI-Filters-Applied: {filters:?}"
    );
    let mut expected = vec![
        sbom.digest.clone(),
        sig.digest.clone(),
        attestation.digest.clone(),
        index.digest.clone(),
    ];
    expected.sort();
    assert_eq!(digests(&all), expected, "referrers of the image");

    let e = entry(&all, &sbom.digest);
    assert_eq!(e["mediaType"], OCI_MANIFEST);
    assert_eq!(e["size"], sbom.size());
    assert_eq!(e["artifactType"], SBOM);
    let annotations: Value =
        serde_json::from_slice::<Value>(&sbom.data).unwrap()["annotations"].clone();
    assert_eq!(
        e["annotations"], annotations,
        "annotations are copied into the descriptor"
    );
    assert_eq!(
        entry(&all, &attestation.digest)["artifactType"],
        "application/vnd.example.attestation.config.v1+json"
    );
    let e = entry(&all, &index.digest);
    assert_eq!(e["mediaType"], OCI_INDEX);
    assert_eq!(e["artifactType"], SBOM);

    let (filtered, filters) = referrers(
        &registry,
        repo,
        &image.manifest.digest,
        &format!("?artifactType={SBOM}"),
    );
    assert_eq!(
        filters.as_deref(),
        Some("artifactType"),
        "OCI-Filters-Applied"
    );
    let mut expected = vec![sbom.digest.clone(), index.digest.clone()];
    expected.sort();
    assert_eq!(digests(&filtered), expected, "filtered by {SBOM}");

    let (none, _) = referrers(
        &registry,
        repo,
        &image.manifest.digest,
        "?artifactType=application/vnd.example.none",
    );
    assert_eq!(digests(&none), Vec::<String>::new());

    // The referrers of the signature: none.
    let (empty, _) = referrers(&registry, repo, &sig.digest, "");
    assert_eq!(digests(&empty), Vec::<String>::new());
}

#[test]
fn referrers_of_an_unknown_digest_is_an_empty_index() {
    let (_berth, registry) = setup();
    registry.push_image("team/known", "v1", &Image::random(1));
    let (index, _) = referrers(&registry, "team/known", &unknown_digest(), "");
    assert_eq!(index["manifests"], json!([]));
    let (index, _) = referrers(&registry, "never/pushed", &unknown_digest(), "");
    assert_eq!(index["manifests"], json!([]));
}

#[test]
fn referrers_with_an_invalid_digest_is_400() {
    let (_berth, registry) = setup();
    let resp = registry
        .http()
        .get(registry.url("/v2/team/x/referrers/sha256:nothex"))
        .send()
        .unwrap();
    assert_error(resp, 400, &["DIGEST_INVALID"]);
}

#[test]
fn subject_may_be_pushed_after_its_referrer() {
    let (_berth, registry) = setup();
    let repo = "team/later";
    let image = Image::random(1);
    for blob in image.blobs() {
        registry.push_blob(repo, blob);
    }
    let sig = push_artifact(&registry, repo, SIGNATURE, &image.manifest);
    let (index, _) = referrers(&registry, repo, &image.manifest.digest, "");
    assert_eq!(digests(&index), vec![sig.digest.clone()]);
    registry.push_manifest(repo, "v1", &image.manifest);
    let (index, _) = referrers(&registry, repo, &image.manifest.digest, "");
    assert_eq!(digests(&index), vec![sig.digest]);
}

#[test]
fn deleted_referrer_leaves_the_list() {
    let (_berth, registry) = setup();
    let repo = "team/gone";
    let image = Image::random(1);
    registry.push_image(repo, "v1", &image);
    let sbom = push_artifact(&registry, repo, SBOM, &image.manifest);
    let sig = push_artifact(&registry, repo, SIGNATURE, &image.manifest);
    let resp = registry
        .http()
        .delete(registry.url(&format!("/v2/{repo}/manifests/{}", sbom.digest)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let (index, _) = referrers(&registry, repo, &image.manifest.digest, "");
    assert_eq!(digests(&index), vec![sig.digest]);
    // Referrers are per repository.
    let (other, _) = referrers(&registry, "team/elsewhere", &image.manifest.digest, "");
    assert_eq!(digests(&other), Vec::<String>::new());
}
