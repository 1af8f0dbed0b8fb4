//! Manifest endpoints of the distribution API: PUT/GET/HEAD by tag and
//! digest, media types, validation, limits and deletes.
#![allow(clippy::unwrap_used)]

use berth_tests::content::{
    image_index, image_manifest, random_bytes, random_layer, sha512_digest, to_json,
    unknown_digest, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED,
    OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use berth_tests::registry::{
    assert_error, assert_error_body, describe, header, header_values, ALL_MANIFEST_TYPES,
};
use berth_tests::{Api, Berth, Blob, Image, Registry};
use reqwest::blocking::Response;
use serde_json::json;

fn setup() -> (Berth, Registry) {
    let berth = Berth::start();
    // Pushes go to existing projects only. `never` stays empty: its
    // repositories are unknown (404), not in a missing project (403).
    Api::admin(&berth).create_projects(&["team", "never"]);
    let registry = berth.registry();
    (berth, registry)
}

fn get(registry: &Registry, repo: &str, reference: &str, accept: &str) -> Response {
    registry
        .http()
        .get(registry.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", accept)
        .send()
        .unwrap()
}

fn head(registry: &Registry, repo: &str, reference: &str, accept: &str) -> Response {
    registry
        .http()
        .head(registry.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("accept", accept)
        .send()
        .unwrap()
}

/// An image whose blobs are pushed to `repo`, manifest not pushed.
fn image_with_blobs(registry: &Registry, repo: &str) -> Image {
    let image = Image::random(2);
    for blob in image.blobs() {
        registry.push_blob(repo, blob);
    }
    image
}

#[test]
fn put_by_tag_then_get_and_head_by_tag_and_digest() {
    let (_berth, registry) = setup();
    let repo = "team/app";
    let image = image_with_blobs(&registry, repo);
    let m = &image.manifest;
    let resp = registry.put_manifest(repo, "v1", OCI_MANIFEST, &m.data);
    assert_eq!(resp.status(), 201, "PUT by tag: {}", describe(resp));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(m.digest.as_str())
    );
    let location = registry.location(&resp);
    assert!(
        location.ends_with(&format!("/v2/{repo}/manifests/{}", m.digest))
            || location.ends_with(&format!("/v2/{repo}/manifests/v1")),
        "Location {location}"
    );
    for reference in ["v1", m.digest.as_str()] {
        let resp = get(&registry, repo, reference, OCI_MANIFEST);
        assert_eq!(resp.status(), 200, "GET {reference}");
        assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(m.digest.as_str())
        );
        let body = resp.bytes().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&m.data),
            "exact bytes by {reference}"
        );

        let resp = head(&registry, repo, reference, OCI_MANIFEST);
        assert_eq!(resp.status(), 200, "HEAD {reference}");
        assert_eq!(
            header(&resp, "content-length").as_deref(),
            Some(m.data.len().to_string().as_str()),
            "Content-Length of HEAD {reference}"
        );
        assert_eq!(
            header(&resp, "docker-content-digest").as_deref(),
            Some(m.digest.as_str())
        );
        assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_MANIFEST));
    }
    assert_eq!(registry.tags(repo), vec!["v1".to_string()]);
}

#[test]
fn put_by_digest() {
    let (_berth, registry) = setup();
    let repo = "team/bydigest";
    let image = image_with_blobs(&registry, repo);
    let m = &image.manifest;
    let resp = registry.put_manifest(repo, &m.digest, OCI_MANIFEST, &m.data);
    assert_eq!(resp.status(), 201, "PUT by digest: {}", describe(resp));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(m.digest.as_str())
    );
    registry.assert_manifest(repo, &m.digest, m);

    // A body that does not match the digest in the URL is refused.
    let other = image_with_blobs(&registry, repo);
    let resp = registry.put_manifest(repo, &m.digest, OCI_MANIFEST, &other.manifest.data);
    assert_error(resp, 400, &["DIGEST_INVALID", "MANIFEST_INVALID"]);
    registry.assert_manifest(repo, &m.digest, m);
}

#[test]
fn accept_negotiation() {
    let (_berth, registry) = setup();
    let repo = "team/negotiate";
    let docker = Image::random_docker(1);
    registry.push_image(repo, "docker", &docker);
    let oci = Image::random(1);
    registry.push_image(repo, "oci", &oci);

    let accepts = [
        ALL_MANIFEST_TYPES.to_string(),
        format!("{OCI_INDEX};q=0.5, {DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.9"),
        "*/*".to_string(),
    ];
    for (tag, image, media_type) in [
        ("docker", &docker, DOCKER_MANIFEST),
        ("oci", &oci, OCI_MANIFEST),
    ] {
        for accept in &accepts {
            let resp = get(&registry, repo, tag, accept);
            assert_eq!(resp.status(), 200, "GET {tag} with Accept {accept}");
            assert_eq!(
                header(&resp, "content-type").as_deref(),
                Some(media_type),
                "Content-Type of {tag} with Accept {accept}"
            );
            assert!(resp.bytes().unwrap().as_ref() == image.manifest.data.as_slice());
        }
        // Several Accept headers, as Go clients send them.
        let resp = registry
            .http()
            .get(registry.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("accept", OCI_INDEX)
            .header("accept", media_type)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {tag} with repeated Accept headers");
        assert_eq!(header(&resp, "content-type").as_deref(), Some(media_type));
        // A type that was not asked for is never sent mislabelled.
        let other = if media_type == OCI_MANIFEST {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        let resp = get(&registry, repo, tag, other);
        if resp.status() == 200 {
            assert_eq!(
                header(&resp, "content-type").as_deref(),
                Some(media_type),
                "a {media_type} must keep its Content-Type even when Accept is {other}"
            );
        } else {
            assert!(
                resp.status() == 404 || resp.status() == 406,
                "GET {tag} with Accept {other}: {}",
                describe(resp)
            );
        }
    }
}

#[test]
fn manifest_referencing_missing_blob_is_400_manifest_blob_unknown() {
    let (_berth, registry) = setup();
    let repo = "team/missing";
    let image = image_with_blobs(&registry, repo);
    let absent = random_layer(1, 100).blob;
    let layers = [image.layers[0].blob.clone(), absent];
    let manifest = image_manifest(&image.config, &layers);
    let resp = registry.put_manifest(repo, "v1", OCI_MANIFEST, &manifest);
    assert_error(resp, 400, &["MANIFEST_BLOB_UNKNOWN"]);
    // A missing config counts too.
    let config = Blob::new(
        b"{\"architecture\":\"amd64\"}".to_vec(),
        image.config.media_type.as_str(),
    );
    let manifest = image_manifest(&config, &[image.layers[0].blob.clone()]);
    let resp = registry.put_manifest(repo, "v1", OCI_MANIFEST, &manifest);
    assert_error(resp, 400, &["MANIFEST_BLOB_UNKNOWN"]);
    assert_eq!(get(&registry, repo, "v1", OCI_MANIFEST).status(), 404);
}

#[test]
fn manifest_referencing_blob_of_another_repo_is_refused() {
    let (_berth, registry) = setup();
    let image = image_with_blobs(&registry, "team/owner");
    let resp = registry.put_manifest("team/thief", "v1", OCI_MANIFEST, &image.manifest.data);
    assert_error(resp, 400, &["MANIFEST_BLOB_UNKNOWN"]);
}

#[test]
fn manifest_size_limit_is_4_mib() {
    let (berth, registry) = setup();
    let repo = "team/big";
    let image = image_with_blobs(&registry, repo);
    let with_annotation = |len: usize| {
        let mut m: serde_json::Value = serde_json::from_slice(&image.manifest.data).unwrap();
        m["annotations"] = json!({"org.example.padding": "x".repeat(len)});
        to_json(&m)
    };
    // Just under the limit: accepted and returned whole.
    let under = Blob::new(with_annotation(4 * 1024 * 1024 - 4096), OCI_MANIFEST);
    assert!(under.data.len() < 4 * 1024 * 1024);
    registry.push_manifest(repo, "under", &under);
    registry.assert_manifest(repo, "under", &under);
    // Over it: 413.
    let over = with_annotation(4 * 1024 * 1024 + 100);
    // curl reads the answer while it sends (no Expect: 100-continue here).
    let file = berth.scratch_dir().join("over.json");
    std::fs::write(&file, &over).unwrap();
    let resp = registry.curl(&[
        "-X",
        "PUT",
        "-H",
        "Expect:",
        "-H",
        &format!("Content-Type: {OCI_MANIFEST}"),
        "--data-binary",
        &format!("@{}", file.display()),
        &registry.url(&format!("/v2/{repo}/manifests/over")),
    ]);
    assert_eq!(resp.status, 413, "curl: manifest of {} bytes", over.len());
    assert_error_body(&String::from_utf8_lossy(&resp.body), "413 to curl");
    // A client that sends the whole body before reading must see it too;
    // whether it does can depend on timing, so try a few times.
    for attempt in 1..=5 {
        let resp = registry
            .http()
            .put(registry.url(&format!("/v2/{repo}/manifests/over")))
            .header("content-type", OCI_MANIFEST)
            .body(over.clone())
            .send()
            .unwrap_or_else(|e| {
                panic!(
                    "PUT of a {} byte manifest (attempt {attempt}): no readable response, the \
                     connection was cut while the client was sending ({e:?}); a 413 must \
                     reach the client",
                    over.len()
                )
            });
        assert_eq!(resp.status(), 413, "manifest of {} bytes", over.len());
        let text = resp.text().unwrap();
        assert_error_body(&text, "413 on a large manifest");
    }
    assert_eq!(get(&registry, repo, "over", OCI_MANIFEST).status(), 404);
}

#[test]
fn docker_schema1_is_refused_with_a_clear_message() {
    let (_berth, registry) = setup();
    let repo = "team/schema1";
    let layer = Blob::random(100);
    registry.push_blob(repo, &layer);
    let manifest = to_json(&json!({
        "schemaVersion": 1,
        "name": repo,
        "tag": "v1",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": layer.digest}],
        "history": [{"v1Compatibility": "{\"id\":\"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5\"}"}],
        "signatures": [{
            "header": {"jwk": {"crv": "P-256", "kid": "X", "kty": "EC", "x": "a", "y": "b"}, "alg": "ES256"},
            "signature": "c2lnbmF0dXJl",
            "protected": "eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJmUSIsInRpbWUiOiIyMDI0LTAxLTAxVDAwOjAwOjAwWiJ9"
        }]
    }));
    for media_type in [DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1] {
        let resp = registry.put_manifest(repo, "v1", media_type, &manifest);
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        assert!(
            (400..500).contains(&status),
            "schema1 ({media_type}): {status} {text}"
        );
        assert_error_body(&text, "schema1 refusal");
        let lower = text.to_lowercase();
        assert!(
            lower.contains("schema1")
                || lower.contains("schema 1")
                || lower.contains("schema version 1"),
            "the message should name schema1: {text}"
        );
    }
}

#[test]
fn invalid_manifests_are_400_manifest_invalid() {
    let (_berth, registry) = setup();
    let repo = "team/invalid";
    let image = image_with_blobs(&registry, repo);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"{this is not json".to_vec()),
        ("empty body", Vec::new()),
        ("JSON array", b"[1,2,3]".to_vec()),
        (
            "no config or layers",
            b"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"}"
                .to_vec(),
        ),
        (
            "schemaVersion 3",
            to_json(&json!({
                "schemaVersion": 3,
                "mediaType": OCI_MANIFEST,
                "config": image.config.descriptor(),
                "layers": [],
            })),
        ),
        (
            "descriptor with a bad digest",
            to_json(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": image.config.media_type, "digest": "sha256:nothex", "size": 3},
                "layers": [],
            })),
        ),
    ];
    for (what, body) in cases {
        let resp = registry.put_manifest(repo, "bad", OCI_MANIFEST, &body);
        if resp.status() != 400 {
            panic!("{what}: expected 400, got {}", describe(resp));
        }
        assert_error(resp, 400, &["MANIFEST_INVALID", "DIGEST_INVALID"]);
    }
    assert_eq!(get(&registry, repo, "bad", OCI_MANIFEST).status(), 404);
}

#[test]
fn oci_index() {
    let (_berth, registry) = setup();
    let repo = "team/multi";
    let amd = Image::random(1);
    let arm = Image::random(1);
    for image in [&amd, &arm] {
        for blob in image.blobs() {
            registry.push_blob(repo, blob);
        }
        registry.push_manifest(repo, &image.manifest.digest, &image.manifest);
    }
    let index = Blob::new(
        image_index(
            OCI_INDEX,
            &[&amd.manifest, &arm.manifest],
            &["amd64", "arm64"],
        ),
        OCI_INDEX,
    );
    registry.push_manifest(repo, "latest", &index);
    let resp = get(&registry, repo, "latest", OCI_INDEX);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some(OCI_INDEX));
    registry.assert_manifest(repo, "latest", &index);
    registry.assert_manifest(repo, &index.digest, &index);
    registry.assert_manifest(repo, &arm.manifest.digest, &arm.manifest);
}

#[test]
fn docker_manifest_list() {
    let (_berth, registry) = setup();
    let repo = "team/dockerlist";
    let a = Image::random_docker(1);
    let b = Image::random_docker(2);
    for image in [&a, &b] {
        for blob in image.blobs() {
            registry.push_blob(repo, blob);
        }
        registry.push_manifest(repo, &image.manifest.digest, &image.manifest);
    }
    let list = Blob::new(
        image_index(
            DOCKER_LIST,
            &[&a.manifest, &b.manifest],
            &["amd64", "arm64"],
        ),
        DOCKER_LIST,
    );
    registry.push_manifest(repo, "v1", &list);
    let resp = get(&registry, repo, "v1", DOCKER_LIST);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type").as_deref(), Some(DOCKER_LIST));
    assert!(resp.bytes().unwrap().as_ref() == list.data.as_slice());
    let resp = get(&registry, repo, &a.manifest.digest, DOCKER_MANIFEST);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some(DOCKER_MANIFEST)
    );
    registry.assert_manifest(repo, &b.manifest.digest, &b.manifest);
}

#[test]
fn delete_manifest_by_digest() {
    let (_berth, registry) = setup();
    let repo = "team/delmanifest";
    let image = Image::random(1);
    registry.push_image(repo, "v1", &image);
    let url = registry.url(&format!("/v2/{repo}/manifests/{}", image.manifest.digest));
    let resp = registry.http().delete(&url).send().unwrap();
    assert_eq!(resp.status(), 202, "DELETE by digest: {}", describe(resp));
    assert_error(
        get(&registry, repo, &image.manifest.digest, OCI_MANIFEST),
        404,
        &["MANIFEST_UNKNOWN"],
    );
    assert_eq!(
        head(&registry, repo, &image.manifest.digest, OCI_MANIFEST).status(),
        404
    );
    // The tag went with it.
    assert_error(
        get(&registry, repo, "v1", OCI_MANIFEST),
        404,
        &["MANIFEST_UNKNOWN"],
    );
    assert_error(
        registry.http().delete(&url).send().unwrap(),
        404,
        &["MANIFEST_UNKNOWN"],
    );
}

#[test]
fn delete_manifest_by_tag_keeps_it_by_digest() {
    let (_berth, registry) = setup();
    let repo = "team/deltag";
    let image = Image::random(1);
    registry.push_image(repo, "v1", &image);
    registry.push_manifest(repo, "v2", &image.manifest);
    let resp = registry
        .http()
        .delete(registry.url(&format!("/v2/{repo}/manifests/v1")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "DELETE by tag: {}", describe(resp));
    assert_error(
        get(&registry, repo, "v1", OCI_MANIFEST),
        404,
        &["MANIFEST_UNKNOWN"],
    );
    registry.assert_manifest(repo, &image.manifest.digest, &image.manifest);
    registry.assert_manifest(repo, "v2", &image.manifest);
    assert_eq!(registry.tags(repo), vec!["v2".to_string()]);
}

#[test]
fn tag_parameters_on_put_by_digest_answer_oci_tag_headers() {
    let (_berth, registry) = setup();
    let repo = "team/ocitag";
    let image = image_with_blobs(&registry, repo);
    let m = &image.manifest;
    let resp = registry
        .http()
        .put(registry.url(&format!(
            "/v2/{repo}/manifests/{}?tag=alpha&tag=beta&tag=gamma",
            m.digest
        )))
        .header("content-type", OCI_MANIFEST)
        .body(m.data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "PUT ?tag=: {}", describe(resp));
    let mut tags = header_values(&resp, "oci-tag");
    tags.sort();
    assert_eq!(tags, vec!["alpha", "beta", "gamma"], "OCI-Tag headers");
    assert_eq!(
        resp.headers().get_all("oci-tag").iter().count(),
        3,
        "one OCI-Tag header per tag"
    );
    for tag in ["alpha", "beta", "gamma"] {
        registry.assert_manifest(repo, tag, m);
    }
}

#[test]
fn unknown_manifests_are_404() {
    let (_berth, registry) = setup();
    let image = Image::random(1);
    registry.push_image("team/known", "v1", &image);
    assert_error(
        get(&registry, "team/known", "nope", OCI_MANIFEST),
        404,
        &["MANIFEST_UNKNOWN"],
    );
    assert_error(
        get(&registry, "team/known", &unknown_digest(), OCI_MANIFEST),
        404,
        &["MANIFEST_UNKNOWN"],
    );
    assert_eq!(
        head(&registry, "team/known", "nope", OCI_MANIFEST).status(),
        404
    );
    assert_error(
        get(&registry, "never/pushed", "latest", OCI_MANIFEST),
        404,
        &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
    );
    assert_eq!(
        head(&registry, "never/pushed", "latest", OCI_MANIFEST).status(),
        404
    );
}

#[test]
fn invalid_tags_are_refused() {
    let (_berth, registry) = setup();
    let repo = "team/tags";
    let image = image_with_blobs(&registry, repo);
    let long = "a".repeat(129);
    for tag in [".hidden", "-dash", long.as_str(), "bad%21tag"] {
        let resp = registry.put_manifest(repo, tag, OCI_MANIFEST, &image.manifest.data);
        assert_error(resp, 400, &["TAG_INVALID", "MANIFEST_INVALID"]);
    }
    // The longest valid tag works.
    let longest = format!("_{}", "9".repeat(127));
    registry.push_manifest(repo, &longest, &image.manifest);
    registry.assert_manifest(repo, &longest, &image.manifest);
}

#[test]
fn manifest_with_a_sha512_digest() {
    let (_berth, registry) = setup();
    let repo = "team/m512";
    let layer = random_bytes(4000);
    let layer_digest = sha512_digest(&layer);
    registry.push_bytes(repo, &layer, &layer_digest);
    let config = Blob::new(
        b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec(),
        OCI_CONFIG,
    );
    registry.push_blob(repo, &config);
    let manifest = to_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }));
    let digest = sha512_digest(&manifest);
    let resp = registry.put_manifest(repo, &digest, OCI_MANIFEST, &manifest);
    assert_eq!(
        resp.status(),
        201,
        "PUT manifest by sha512: {}",
        describe(resp)
    );
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    let resp = get(&registry, repo, &digest, OCI_MANIFEST);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert!(resp.bytes().unwrap().as_ref() == manifest.as_slice());
    let resp = head(&registry, repo, &digest, OCI_MANIFEST);
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-length").as_deref(),
        Some(manifest.len().to_string().as_str())
    );
}

/// References are capped (10,000 descriptors per manifest, with a clear
/// MANIFEST_INVALID), and a large manifest below the cap, with repeated
/// layers, is checked and stored in one go; a missing one is named.
#[test]
fn manifest_references_are_capped_and_checked_in_bulk() {
    let (_berth, registry) = setup();
    let repo = "team/many";
    let config = Blob::new(b"{}".to_vec(), OCI_CONFIG);
    registry.push_blob(repo, &config);
    let layers: Vec<Blob> = (0..50).map(|_| Blob::random(64)).collect();
    for layer in &layers {
        registry.push_blob(repo, layer);
    }
    let manifest = |count: usize, extra: Option<&Blob>| {
        let mut list: Vec<_> = (0..count)
            .map(|i| layers[i % layers.len()].descriptor())
            .collect();
        if let Some(extra) = extra {
            list[count / 2] = extra.descriptor();
        }
        to_json(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": list,
        }))
    };
    let started = std::time::Instant::now();
    let resp = registry.put_manifest(repo, "big", OCI_MANIFEST, &manifest(9_999, None));
    assert_eq!(resp.status(), 201, "9,999 layers: {}", describe(resp));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a manifest of 10,000 descriptors took {:?}",
        started.elapsed()
    );

    let resp = registry.put_manifest(repo, "toobig", OCI_MANIFEST, &manifest(10_000, None));
    let body = assert_error(resp, 400, &["MANIFEST_INVALID"]);
    assert!(
        body.to_string().contains("10000"),
        "the message names the limit: {body}"
    );

    let missing = Blob::random(64);
    let resp = registry.put_manifest(
        repo,
        "missing",
        OCI_MANIFEST,
        &manifest(9_999, Some(&missing)),
    );
    let body = assert_error(resp, 400, &["MANIFEST_BLOB_UNKNOWN"]);
    assert!(
        body.to_string().contains(&missing.digest),
        "the missing blob is named: {body}"
    );
}
