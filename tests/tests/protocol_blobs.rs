//! Blob endpoints of the distribution API: the base endpoint, every upload
//! flavour, reads with ranges, deletes and digests.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use berth_tests::content::{random_bytes, sha256_digest, sha512_digest, unknown_digest};
use berth_tests::registry::{assert_error, assert_error_body, describe, header, with_query};
use berth_tests::{Api, Berth, Blob, Registry};
use reqwest::blocking::Body;

fn setup() -> (Berth, Registry) {
    let berth = Berth::start();
    // Pushes go to existing projects only. `never` stays empty: its
    // repositories are unknown (404), not in a missing project (403).
    Api::admin(&berth).create_projects(&["team", "other", "never"]);
    let registry = berth.registry();
    (berth, registry)
}

/// A reader that hands out its data in small pieces, so the body is sent
/// with chunked transfer encoding and in several writes.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7919).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn base_endpoint_answers_200_with_api_version() {
    let (berth, registry) = setup();
    let resp = registry.http().get(registry.url("/v2/")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    let resp = registry.curl(&[&format!("{}/v2/", berth.url())]);
    assert_eq!(resp.status, 200, "curl GET /v2/");
    assert_eq!(
        resp.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    assert!(
        body.is_object(),
        "GET /v2/ body: {:?}",
        String::from_utf8_lossy(&resp.body)
    );
}

#[test]
fn monolithic_upload_post_then_put() {
    let (_berth, registry) = setup();
    let blob = Blob::random(100_000);
    let resp = registry
        .http()
        .post(registry.url("/v2/team/mono/blobs/uploads/"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "POST upload");
    assert!(
        header(&resp, "docker-upload-uuid").is_some(),
        "Docker-Upload-UUID"
    );
    let location = registry.location(&resp);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &blob.digest))
        .header("content-type", "application/octet-stream")
        .body(blob.data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "PUT upload");
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(blob.digest.as_str())
    );
    let blob_url = registry.location(&resp);
    assert!(
        blob_url.ends_with(&format!("/v2/team/mono/blobs/{}", blob.digest)),
        "Location of the blob: {blob_url}"
    );
    let body = registry
        .http()
        .get(&blob_url)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(
        body.as_ref() == blob.data.as_slice(),
        "blob bytes via Location"
    );
    registry.assert_blob("team/mono", &blob);
}

#[test]
fn single_post_with_digest() {
    let (_berth, registry) = setup();
    let blob = Blob::random(4321);
    let resp = registry
        .http()
        .post(registry.url(&format!(
            "/v2/team/single/blobs/uploads/?digest={}",
            blob.digest
        )))
        .header("content-type", "application/octet-stream")
        .body(blob.data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "single POST: {}", describe(resp));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(blob.digest.as_str())
    );
    assert!(header(&resp, "location").is_some(), "Location");
    registry.assert_blob("team/single", &blob);
}

#[test]
fn chunked_upload_with_content_range() {
    let (_berth, registry) = setup();
    let data = random_bytes(300_000);
    let digest = sha256_digest(&data);
    let mut location = registry.start_upload("team/chunked");
    let mut offset = 0;
    for chunk in data.chunks(110_000) {
        let end = offset + chunk.len() - 1;
        let resp = registry
            .http()
            .patch(&location)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{offset}-{end}"))
            .header("content-length", chunk.len())
            .body(chunk.to_vec())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202, "PATCH {offset}-{end}");
        assert_eq!(
            header(&resp, "range").as_deref(),
            Some(format!("0-{end}").as_str()),
            "Range after PATCH {offset}-{end}"
        );
        assert!(header(&resp, "docker-upload-uuid").is_some());
        location = registry.location(&resp);

        let status = registry.http().get(&location).send().unwrap();
        assert_eq!(status.status(), 204, "GET <location>");
        assert_eq!(
            header(&status, "range").as_deref(),
            Some(format!("0-{end}").as_str()),
            "Range of GET <location>"
        );
        assert!(header(&status, "docker-upload-uuid").is_some());
        offset = end + 1;
    }
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .header("content-length", "0")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "closing PUT");
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    let got = registry.get_blob("team/chunked", &digest).bytes().unwrap();
    assert!(got.as_ref() == data.as_slice(), "assembled blob differs");
}

#[test]
fn out_of_order_chunk_is_416_and_session_stays_usable() {
    let (_berth, registry) = setup();
    let data = random_bytes(3000);
    let digest = sha256_digest(&data);
    let location = registry.start_upload("team/ooo");
    let patch = |loc: &str, start: usize, end: usize| {
        registry
            .http()
            .patch(loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{end}"))
            .body(data[start..=end].to_vec())
            .send()
            .unwrap()
    };
    let resp = patch(&location, 0, 999);
    assert_eq!(resp.status(), 202);
    let location = registry.location(&resp);
    // A gap, then an overlap: both out of order.
    assert_eq!(
        patch(&location, 1500, 1999).status(),
        416,
        "chunk after a gap"
    );
    assert_eq!(
        patch(&location, 500, 1499).status(),
        416,
        "overlapping chunk"
    );
    let status = registry.http().get(&location).send().unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(header(&status, "range").as_deref(), Some("0-999"));
    let resp = patch(&location, 1000, 2999);
    assert_eq!(resp.status(), 202, "the right chunk after refusals");
    let location = registry.location(&resp);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = registry.get_blob("team/ooo", &digest).bytes().unwrap();
    assert!(got.as_ref() == data.as_slice());
}

#[test]
fn streamed_patch_with_chunked_transfer_encoding() {
    let (berth, registry) = setup();
    let first = random_bytes(1_000_000);
    let second = random_bytes(777_777);
    let whole: Vec<u8> = [first.as_slice(), second.as_slice()].concat();
    let digest = sha256_digest(&whole);

    // First part from reqwest with a body of unknown length.
    let location = registry.start_upload("team/stream");
    let resp = registry
        .http()
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .body(Body::new(Trickle {
            data: first.clone(),
            pos: 0,
        }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "streamed PATCH");
    assert_eq!(
        header(&resp, "range").as_deref(),
        Some(format!("0-{}", first.len() - 1).as_str())
    );
    let location = registry.location(&resp);

    // Second part from curl, explicitly chunked, as the docker client does.
    let file = berth.scratch_dir().join("second.bin");
    std::fs::write(&file, &second).unwrap();
    let resp = registry.curl(&[
        "-X",
        "PATCH",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &location,
    ]);
    assert_eq!(resp.status, 202, "curl chunked PATCH: {:?}", resp.headers);
    let expected_range = format!("0-{}", whole.len() - 1);
    assert_eq!(resp.header("range"), Some(expected_range.as_str()));
    let location = registry.resolve(resp.header("location").expect("Location"));

    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let got = registry.get_blob("team/stream", &digest).bytes().unwrap();
    assert!(got.as_ref() == whole.as_slice(), "streamed blob differs");
}

#[test]
fn delete_location_cancels_upload() {
    let (_berth, registry) = setup();
    let location = registry.start_upload("team/cancel");
    let resp = registry
        .http()
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .body(random_bytes(1000))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = registry.location(&resp);
    let resp = registry.http().delete(&location).send().unwrap();
    assert!(
        resp.status() == 204 || resp.status() == 202,
        "DELETE <location>: {}",
        describe(resp)
    );
    let resp = registry
        .http()
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .body(random_bytes(10))
        .send()
        .unwrap();
    assert_error(resp, 404, &["BLOB_UPLOAD_UNKNOWN"]);
    let resp = registry.http().get(&location).send().unwrap();
    assert_error(resp, 404, &["BLOB_UPLOAD_UNKNOWN"]);
}

#[test]
fn unknown_upload_session_is_404() {
    let (_berth, registry) = setup();
    registry.start_upload("team/sess");
    let url = registry.url("/v2/team/sess/blobs/uploads/00000000-0000-4000-8000-000000000000");
    let resp = registry
        .http()
        .patch(&url)
        .body(vec![1, 2, 3])
        .send()
        .unwrap();
    assert_error(resp, 404, &["BLOB_UPLOAD_UNKNOWN"]);
    let resp = registry.http().get(&url).send().unwrap();
    assert_error(resp, 404, &["BLOB_UPLOAD_UNKNOWN"]);
}

#[test]
fn digest_mismatch_on_put_is_400_digest_invalid() {
    let (_berth, registry) = setup();
    let sent = random_bytes(5000);
    let claimed = unknown_digest();
    let location = registry.start_upload("team/mismatch");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &claimed))
        .header("content-type", "application/octet-stream")
        .body(sent.clone())
        .send()
        .unwrap();
    assert_error(resp, 400, &["DIGEST_INVALID"]);
    for digest in [claimed, sha256_digest(&sent)] {
        let resp = registry.head_blob("team/mismatch", &digest);
        assert_eq!(resp.status(), 404, "HEAD {digest} after a refused upload");
    }
    // Same through a single POST.
    let resp = registry
        .http()
        .post(registry.url(&format!(
            "/v2/team/mismatch/blobs/uploads/?digest={}",
            unknown_digest()
        )))
        .header("content-type", "application/octet-stream")
        .body(sent)
        .send()
        .unwrap();
    assert_error(resp, 400, &["DIGEST_INVALID"]);
}

#[test]
fn blob_get_and_head() {
    let (berth, registry) = setup();
    let blob = Blob::random(12_345);
    registry.push_blob("team/read", &blob);
    let resp = registry.head_blob("team/read", &blob.digest);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length").as_deref(), Some("12345"));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(blob.digest.as_str())
    );
    assert!(resp.bytes().unwrap().is_empty(), "HEAD has no body");
    let resp = registry.get_blob("team/read", &blob.digest);
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(blob.digest.as_str())
    );
    assert_eq!(
        header(&resp, "docker-distribution-api-version").as_deref(),
        Some("registry/2.0")
    );
    registry.assert_blob("team/read", &blob);
    // HEAD over curl: the Content-Length header as sent on the wire.
    let url = format!("{}/v2/team/read/blobs/{}", berth.url(), blob.digest);
    let resp = registry.curl(&["-I", &url]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("12345"));
}

#[test]
fn blob_range_requests() {
    let (berth, registry) = setup();
    let blob = Blob::random(10_000);
    registry.push_blob("team/range", &blob);
    let url = registry.url(&format!("/v2/team/range/blobs/{}", blob.digest));
    let cases: [(&str, usize, usize); 3] = [
        ("bytes=10-99", 10, 99),
        ("bytes=9000-", 9000, 9999),
        ("bytes=-50", 9950, 9999),
    ];
    for (range, start, end) in cases {
        let resp = registry
            .http()
            .get(&url)
            .header("range", range)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 206, "GET {range}");
        assert_eq!(
            header(&resp, "content-range").as_deref(),
            Some(format!("bytes {start}-{end}/10000").as_str()),
            "Content-Range of {range}"
        );
        let body = resp.bytes().unwrap();
        assert!(
            body.as_ref() == &blob.data[start..=end],
            "{range}: wrong bytes ({} returned)",
            body.len()
        );
    }
    // Unsatisfiable: the body length on the wire must match Content-Length.
    for range in ["bytes=10000-10010", "bytes=20000-"] {
        let resp = registry.curl_lenient(&["-H", &format!("Range: {range}"), &url]);
        assert_eq!(resp.status, 416, "GET {range}");
        assert!(
            resp.error.is_none(),
            "GET {range}: the 416 body does not match its Content-Length ({:?}, headers {:?})",
            resp.error,
            resp.headers
        );
        assert_eq!(
            resp.header("content-range"),
            Some("bytes */10000"),
            "Content-Range of a 416"
        );
        let declared: usize = resp
            .header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(resp.body.len());
        assert_eq!(
            declared,
            resp.body.len(),
            "416 body length vs Content-Length"
        );
    }
    drop(berth);
}

#[test]
fn cross_repo_mount() {
    let (_berth, registry) = setup();
    let blob = Blob::random(2048);
    registry.push_blob("team/source", &blob);
    let resp = registry
        .http()
        .post(registry.url(&format!(
            "/v2/other/dest/blobs/uploads/?mount={}&from=team/source",
            blob.digest
        )))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "mount: {}", describe(resp));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(blob.digest.as_str())
    );
    let location = registry.location(&resp);
    assert!(
        location.contains("/v2/other/dest/blobs/"),
        "Location {location}"
    );
    registry.assert_blob("other/dest", &blob);

    // Mounting from a repository that lacks the blob opens an upload.
    let missing = Blob::random(999);
    let resp = registry
        .http()
        .post(registry.url(&format!(
            "/v2/other/dest/blobs/uploads/?mount={}&from=team/source",
            missing.digest
        )))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "mount of a missing blob");
    let location = registry.location(&resp);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &missing.digest))
        .body(missing.data.clone())
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "the session opened by a failed mount works"
    );
    registry.assert_blob("other/dest", &missing);
}

#[test]
fn mount_without_from_where_blob_exists() {
    let (_berth, registry) = setup();
    let blob = Blob::random(3000);
    registry.push_blob("team/origin", &blob);
    let resp = registry
        .http()
        .post(registry.url(&format!(
            "/v2/team/auto/blobs/uploads/?mount={}",
            blob.digest
        )))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "mount without from: {}", describe(resp));
    registry.assert_blob("team/auto", &blob);
}

#[test]
fn blob_of_one_repo_is_not_readable_from_another() {
    let (_berth, registry) = setup();
    let blob = Blob::random(1500);
    registry.push_blob("team/a", &blob);
    assert_error(
        registry.get_blob("team/b", &blob.digest),
        404,
        &["BLOB_UNKNOWN"],
    );
    assert_eq!(registry.head_blob("team/b", &blob.digest).status(), 404);
    // Not even in a repository whose name extends the first.
    assert_eq!(registry.head_blob("team/a/b", &blob.digest).status(), 404);
    registry.assert_blob("team/a", &blob);
}

#[test]
fn delete_blob() {
    let (_berth, registry) = setup();
    let blob = Blob::random(777);
    registry.push_blob("team/del", &blob);
    let resp = registry
        .http()
        .delete(registry.url(&format!("/v2/team/del/blobs/{}", blob.digest)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "DELETE blob: {}", describe(resp));
    assert_error(
        registry.get_blob("team/del", &blob.digest),
        404,
        &["BLOB_UNKNOWN"],
    );
    assert_eq!(registry.head_blob("team/del", &blob.digest).status(), 404);
    let resp = registry
        .http()
        .delete(registry.url(&format!("/v2/team/del/blobs/{}", blob.digest)))
        .send()
        .unwrap();
    assert_error(resp, 404, &["BLOB_UNKNOWN"]);
}

#[test]
fn sha512_blobs() {
    let (_berth, registry) = setup();
    // Single POST.
    let data = random_bytes(70_000);
    let digest = sha512_digest(&data);
    let resp = registry
        .http()
        .post(registry.url(&format!("/v2/team/sha512/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "sha512 POST: {}", describe(resp));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    let resp = registry.head_blob("team/sha512", &digest);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length").as_deref(), Some("70000"));
    assert_eq!(
        header(&resp, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    let got = registry.get_blob("team/sha512", &digest).bytes().unwrap();
    assert!(got.as_ref() == data.as_slice());

    // Chunked, then PUT with a sha512 digest.
    let data = random_bytes(5000);
    let digest = sha512_digest(&data);
    let location = registry.start_upload("team/sha512");
    let resp = registry
        .http()
        .patch(&location)
        .header("content-range", "0-4999")
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = registry.location(&resp);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "sha512 PUT: {}", describe(resp));
    let got = registry.get_blob("team/sha512", &digest).bytes().unwrap();
    assert!(got.as_ref() == data.as_slice());

    // A wrong sha512 is refused.
    let location = registry.start_upload("team/sha512");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &sha512_digest(b"other")))
        .body(data)
        .send()
        .unwrap();
    assert_error(resp, 400, &["DIGEST_INVALID"]);
}

#[test]
fn unknown_blob_is_404_blob_unknown() {
    let (_berth, registry) = setup();
    registry.push_blob("team/known", &Blob::random(10));
    let digest = unknown_digest();
    assert_error(
        registry.get_blob("team/known", &digest),
        404,
        &["BLOB_UNKNOWN"],
    );
    let resp = registry.head_blob("team/known", &digest);
    assert_eq!(resp.status(), 404);
    assert_error(
        registry.get_blob("never/pushed", &digest),
        404,
        &["BLOB_UNKNOWN", "NAME_UNKNOWN"],
    );
}

#[test]
fn invalid_digests_are_400_digest_invalid() {
    let (berth, registry) = setup();
    let bad = [
        "sha256:abc",
        "sha256:ZZZZ000000000000000000000000000000000000000000000000000000000000",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256",
    ];
    for digest in bad {
        // An unknown algorithm may also be reported as UNSUPPORTED.
        assert_error(
            registry.get_blob("team/dig", digest),
            400,
            &["DIGEST_INVALID", "UNSUPPORTED"],
        );
    }
    let location = registry.start_upload("team/dig");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", "sha256:nothex"))
        .body(vec![1, 2, 3])
        .send()
        .unwrap();
    assert_error(resp, 400, &["DIGEST_INVALID"]);
    let resp = registry.curl(&[&format!("{}/v2/team/dig/blobs/sha256:123", berth.url())]);
    assert_eq!(resp.status, 400);
    assert_error_body(&String::from_utf8_lossy(&resp.body), "curl GET bad digest");
}

#[test]
fn closing_put_carries_the_last_chunk() {
    let (_berth, registry) = setup();
    let data = random_bytes(20_000);
    let digest = sha256_digest(&data);
    let location = registry.start_upload("team/lastchunk");
    let resp = registry
        .http()
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-14999")
        .body(data[..15_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let location = registry.location(&resp);
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .header("content-type", "application/octet-stream")
        .header("content-range", "15000-19999")
        .body(data[15_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        201,
        "PUT with the last chunk: {}",
        describe(resp)
    );
    let got = registry
        .get_blob("team/lastchunk", &digest)
        .bytes()
        .unwrap();
    assert!(
        got.as_ref() == data.as_slice(),
        "blob assembled from PATCH + PUT"
    );
    // The finished session is gone.
    let resp = registry.http().get(&location).send().unwrap();
    assert_error(resp, 404, &["BLOB_UPLOAD_UNKNOWN"]);
}
