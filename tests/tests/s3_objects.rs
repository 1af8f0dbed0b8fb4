//! Blobs on an object store (Garage, with metadata on PostgreSQL): what
//! only that configuration has. Uploads are multipart uploads whose state
//! is in the database, so their chunks may land on any instance and an
//! instance killed mid-chunk loses only that chunk; blob GETs may be
//! redirected to pre-signed URLs; GC and the upload purge clean the store.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use berth_tests::content::{random_bytes, sha256_digest};
use berth_tests::garage;
use berth_tests::registry::{header, with_query, Registry};
use berth_tests::tools::{layout_digest, skopeo_copy, skopeo_login, text, write_oci_layout};
use berth_tests::{Api, Berth, Image};

const MIB: usize = 1024 * 1024;
/// The harness's part size (`garage::Garage::env`).
const PART: usize = 5 * MIB;

fn objects(berth: &Berth) -> Vec<(String, u64)> {
    garage::shared().list(&berth.object_prefix().expect("an object store backend"))
}

fn under(objects: &[(String, u64)], area: &str) -> Vec<(String, u64)> {
    objects
        .iter()
        .filter(|(k, _)| k.starts_with(area))
        .cloned()
        .collect()
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PATCHes `data` at `offset` to an upload; returns the next Location.
fn patch(registry: &Registry, location: &str, offset: usize, data: &[u8]) -> String {
    let resp = registry
        .http()
        .patch(location)
        .header("Content-Type", "application/octet-stream")
        .header(
            "Content-Range",
            format!("{}-{}", offset, offset + data.len() - 1),
        )
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202, "PATCH at {offset}: {}", text_of(resp));
    assert_eq!(
        header(&resp, "range").as_deref(),
        Some(format!("0-{}", offset + data.len() - 1).as_str())
    );
    registry.location(&resp)
}

fn text_of(resp: reqwest::blocking::Response) -> String {
    berth_tests::registry::describe(resp)
}

/// Moves an upload URL from one instance to another (same path).
fn on(registry: &Registry, location: &str) -> String {
    let path = location.splitn(4, '/').nth(3).unwrap();
    registry.url(&format!("/{path}"))
}

/// The final PUT of an upload with `digest` (no body); its status must
/// be 201.
fn complete(registry: &Registry, location: &str, digest: &str) {
    let resp = registry
        .http()
        .put(with_query(&on(registry, location), "digest", digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text_of(resp));
}

/// Sends `request(registry, i)` through both registries at the same
/// moment; the two statuses.
fn at_once(
    registries: [&Registry; 2],
    request: impl Fn(&Registry, usize) -> reqwest::blocking::RequestBuilder + Sync,
) -> Vec<u16> {
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let runs: Vec<_> = registries
            .into_iter()
            .enumerate()
            .map(|(i, registry)| {
                let (start, request) = (&start, &request);
                s.spawn(move || {
                    let prepared = request(registry, i);
                    start.wait();
                    prepared.send().unwrap().status().as_u16()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

#[test]
fn chunks_of_one_upload_assemble_one_blob_across_instances() {
    let a = Berth::start();
    let b = a.join();
    Api::admin(&a).create_projects(&["team"]);
    let (ra, rb) = (a.registry(), b.registry());
    // Two whole parts and a tail, sent in chunks that straddle the part
    // boundaries, each chunk to the other instance.
    let data = random_bytes(2 * PART + 777_777);
    let digest = sha256_digest(&data);
    let mut location = ra.start_upload("team/app");
    let mut offset = 0;
    for (i, chunk) in data.chunks(3 * MIB + 12_345).enumerate() {
        let registry = if i % 2 == 0 { &rb } else { &ra };
        location = patch(registry, &on(registry, &location), offset, chunk);
        offset += chunk.len();
    }
    // The progress is in the database: either instance reports it.
    let status = ra.http().get(on(&ra, &location)).send().unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(
        header(&status, "range").as_deref(),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    complete(&rb, &location, &digest);

    for registry in [&ra, &rb] {
        let got = registry.get_blob("team/app", &digest);
        assert_eq!(got.status(), 200);
        assert_eq!(sha256_digest(&got.bytes().unwrap()), digest);
        // A range across the first part boundary.
        let resp = registry
            .http()
            .get(registry.url(&format!("/v2/team/app/blobs/{digest}")))
            .header("Range", format!("bytes={}-{}", PART - 10, PART + 9))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 206);
        assert_eq!(&resp.bytes().unwrap()[..], &data[PART - 10..PART + 10]);
    }
    // One object holds the blob; the pieces are gone.
    let stored = objects(&a);
    let blobs = under(&stored, "blobs/");
    assert_eq!(blobs.len(), 1, "{stored:?}");
    assert_eq!(blobs[0].1, data.len() as u64);
    assert!(under(&stored, "uploads/").is_empty(), "{stored:?}");
}

/// A PATCH cut off by a kill -9 of its instance: the upload resumes on
/// another instance from what was saved (whole parts and earlier
/// requests), and the blob comes out exact.
#[test]
fn an_instance_killed_mid_chunk_loses_only_that_chunk() {
    let mut a = Berth::start();
    let b = a.join();
    Api::admin(&a).create_projects(&["team"]);
    let (ra, rb) = (a.registry(), b.registry());
    let data = random_bytes(PART + 3 * MIB);
    let digest = sha256_digest(&data);
    let location = ra.start_upload("team/app");
    // 6 MiB: one part and a piece, saved.
    let first = PART + MIB;
    let location = patch(&ra, &location, 0, &data[..first]);

    // Half of the next chunk reaches instance a, which then dies.
    let url = on(&ra, &location);
    let path = url.splitn(4, '/').nth(3).unwrap().to_owned();
    let (user, pw) = a.admin_credentials();
    let auth = berth_tests::registry::base64(format!("{user}:{pw}").as_bytes());
    let mut stream = std::net::TcpStream::connect(a.host_port()).unwrap();
    let rest = &data[first..];
    write!(
        stream,
        "PATCH /{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        a.host_port(),
        rest.len()
    )
    .unwrap();
    stream.write_all(&rest[..rest.len() / 2]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    a.kill9();
    drop(stream);

    // Instance b reports what was saved and takes the rest, once the
    // dead request's hold on the upload ran out (409 until then).
    let url_b = on(&rb, &location);
    let status = rb.http().get(&url_b).send().unwrap();
    assert_eq!(status.status(), 204);
    assert_eq!(
        header(&status, "range").as_deref(),
        Some(format!("0-{}", first - 1).as_str())
    );
    wait_for(
        Duration::from_secs(30),
        "the dead writer's lease to end",
        || {
            let resp = rb.http().patch(&url_b).body(Vec::new()).send().unwrap();
            resp.status() != 409
        },
    );
    let location = patch(&rb, &url_b, first, rest);
    complete(&rb, &location, &digest);
    let got = rb.get_blob("team/app", &digest);
    assert_eq!(sha256_digest(&got.bytes().unwrap()), digest);
}

/// `[storage] redirect = true`: blob GETs answer 307 to a pre-signed URL
/// of the object store, which serves the bytes; HEAD answers itself; and
/// skopeo follows the redirect on a pull.
#[test]
fn blob_gets_redirect_to_presigned_urls_that_clients_follow() {
    let berth = Berth::start_with_env(&[("BERTH_STORAGE__REDIRECT", "true")]);
    Api::admin(&berth).create_projects(&["team"]);
    let scratch = berth.scratch_dir();
    let image = Image::random(2);
    let layout = write_oci_layout(&scratch.join("layout"), &image, "v1");
    let authfile = scratch.join("auth.json");
    let (user, pw) = berth.admin_credentials();
    let out = skopeo_login(&authfile, &berth.host_port(), user, pw);
    assert!(out.status.success(), "{}", text(&out));
    let dest = format!("docker://{}/team/app:v1", berth.host_port());
    let out = skopeo_copy(&authfile, &layout, &dest);
    assert!(out.status.success(), "{}", text(&out));

    let layer = &image.layers[0].blob;
    let plain = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = berth
        .registry()
        .url(&format!("/v2/team/app/blobs/{}", layer.digest));
    let resp = plain.get(&url).basic_auth(user, Some(pw)).send().unwrap();
    assert_eq!(resp.status(), 307);
    let target = header(&resp, "location").unwrap();
    assert!(
        target.starts_with(&garage::shared().endpoint()) && target.contains("X-Amz-Signature="),
        "{target}"
    );
    let bytes = plain.get(&target).send().unwrap();
    assert_eq!(bytes.status(), 200);
    assert_eq!(&bytes.bytes().unwrap()[..], &layer.data[..]);
    let head = plain.head(&url).basic_auth(user, Some(pw)).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        header(&head, "content-length").as_deref(),
        Some(layer.data.len().to_string().as_str())
    );

    let back = scratch.join("back");
    let src = format!("docker://{}/team/app:v1", berth.host_port());
    let out = skopeo_copy(&authfile, &src, &format!("oci:{}:v1", back.display()));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        layout_digest(&back, "v1"),
        layout_digest(&scratch.join("layout"), "v1")
    );
}

/// GC deletes the objects of the blobs it deletes and objects that no
/// row names (a crash's leftovers); the server's purge removes abandoned
/// uploads' pieces.
#[test]
fn gc_and_the_upload_purge_empty_the_store_of_garbage() {
    let berth = Berth::start_with_env(&[
        ("BERTH_GC__GRACE_PERIOD", "0s"),
        ("BERTH_SERVER__UPLOAD_PURGE_AGE", "2s"),
    ]);
    Api::admin(&berth).create_projects(&["team"]);
    let registry = berth.registry();
    let prefix = berth.object_prefix().unwrap();
    let doomed = berth_tests::content::Blob::random(3000);
    let image = Image::random(1);
    registry.push_image("team/app", "v1", &image);
    registry.push_blob("team/app", &doomed);
    let resp = registry
        .http()
        .delete(registry.url(&format!("/v2/team/app/blobs/{}", doomed.digest)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    garage::shared().put(&format!("{prefix}blobs/u/leftover"), b"crashed");
    // An abandoned upload with a piece stored.
    let location = registry.start_upload("team/app");
    patch(&registry, &location, 0, &random_bytes(1000));
    assert_eq!(under(&objects(&berth), "uploads/").len(), 1);

    let mut gc = berth.command(&["gc"]);
    gc.env("BERTH_GC__GRACE_PERIOD", "0s");
    // A final PUT under way: its upload row names the key it assembles
    // at (the object of a multipart upload is dated from its start, so
    // only the name protects it).
    let completing = registry.start_upload("team/app");
    let id = completing.rsplit('/').next().unwrap().to_owned();
    berth.sql(&format!(
        "UPDATE uploads SET len = -1, location = 'u/completing' WHERE id = '{id}'"
    ));
    garage::shared().put(&format!("{prefix}blobs/u/completing"), b"being assembled");
    let out = berth_tests::tools::output(&mut gc, None);
    assert!(out.status.success(), "berth gc: {}", text(&out));
    let stored = objects(&berth);
    assert!(
        stored.iter().any(|(k, _)| k == "blobs/u/completing"),
        "GC took an object an upload row names: {stored:?}"
    );
    let sizes: Vec<u64> = under(&stored, "blobs/").iter().map(|(_, s)| *s).collect();
    assert!(
        !sizes.contains(&3000),
        "the deleted blob's object stays: {stored:?}"
    );
    assert!(!sizes.contains(&7), "the leftover stays: {stored:?}");
    // What the image references is kept.
    registry.assert_image("team/app", "v1", &image);

    wait_for(
        Duration::from_secs(30),
        "the purge of the abandoned uploads",
        || {
            under(&objects(&berth), "uploads/").is_empty()
                && berth.sql("SELECT COUNT(*) FROM uploads").trim() == "0"
        },
    );
    // Its row gone (the final PUT never finished), the object is garbage.
    let out = berth_tests::tools::output(&mut gc, None);
    assert!(out.status.success(), "berth gc: {}", text(&out));
    assert!(!objects(&berth)
        .iter()
        .any(|(k, _)| k == "blobs/u/completing"));
}

/// Two final PUTs of one upload at once, on two instances, with different
/// last bytes: one wins, the other finds the upload gone; the stored blob
/// is exactly what its digest says.
#[test]
fn of_two_final_puts_of_one_upload_one_wins() {
    let a = Berth::start();
    let b = a.join();
    Api::admin(&a).create_projects(&["team"]);
    let (ra, rb) = (a.registry(), b.registry());
    for round in 0..5 {
        let head = random_bytes(100);
        let location = patch(&ra, &ra.start_upload("team/app"), 0, &head);
        let tails = [random_bytes(10), random_bytes(10)];
        let digests: Vec<String> = tails
            .iter()
            .map(|t| sha256_digest(&[&head[..], &t[..]].concat()))
            .collect();
        let statuses = at_once([&ra, &rb], |registry, i| {
            let url = with_query(&on(registry, &location), "digest", &digests[i]);
            registry.http().put(url).body(tails[i].clone())
        });
        let won: Vec<usize> = (0..2).filter(|i| statuses[*i] == 201).collect();
        assert_eq!(won.len(), 1, "round {round}: {statuses:?}");
        let loser = 1 - won[0];
        assert!(
            [404, 409].contains(&statuses[loser]),
            "round {round}: {statuses:?}"
        );
        let got = rb.get_blob("team/app", &digests[won[0]]);
        assert_eq!(got.status(), 200);
        assert_eq!(sha256_digest(&got.bytes().unwrap()), digests[won[0]]);
        assert_eq!(rb.head_blob("team/app", &digests[loser]).status(), 404);
    }
}

/// A client sending a chunk of a few bytes at a time: the pieces are
/// merged as they pile up, so their number stays bounded, and the blob
/// comes out exact.
#[test]
fn tiny_chunks_keep_a_bounded_number_of_pieces() {
    let berth = Berth::start();
    Api::admin(&berth).create_projects(&["team"]);
    let registry = berth.registry();
    let data = random_bytes(60 * 7);
    let digest = sha256_digest(&data);
    let mut location = registry.start_upload("team/app");
    let mut most = 0;
    for (i, chunk) in data.chunks(7).enumerate() {
        location = patch(&registry, &location, i * 7, chunk);
        most = most.max(under(&objects(&berth), "uploads/").len());
    }
    assert!(most <= 16, "{most} pieces at once");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text_of(resp));
    let got = registry.get_blob("team/app", &digest);
    assert_eq!(sha256_digest(&got.bytes().unwrap()), digest);
    assert!(under(&objects(&berth), "uploads/").is_empty());
}

/// Two PATCHes of different bytes at the same offset of one upload, at
/// once on two instances: one is taken, the other refused (it never
/// overwrites a part the first sent), and the upload completes with the
/// bytes that were taken.
#[test]
fn of_two_patches_at_one_offset_one_is_taken_and_the_upload_stays_whole() {
    let a = Berth::start();
    let b = a.join();
    Api::admin(&a).create_projects(&["team"]);
    let (ra, rb) = (a.registry(), b.registry());
    let head = random_bytes(PART);
    let location = patch(&ra, &ra.start_upload("team/app"), 0, &head);
    let bodies = [random_bytes(PART), random_bytes(PART)];
    let statuses = at_once([&ra, &rb], |registry, i| {
        registry
            .http()
            .patch(on(registry, &location))
            .header("Content-Range", format!("{PART}-{}", 2 * PART - 1))
            .body(bodies[i].clone())
    });
    let taken: Vec<usize> = (0..2).filter(|i| statuses[*i] == 202).collect();
    assert_eq!(taken.len(), 1, "{statuses:?}");
    assert!([409, 416].contains(&statuses[1 - taken[0]]), "{statuses:?}");
    let whole = [&head[..], &bodies[taken[0]][..]].concat();
    let digest = sha256_digest(&whole);
    complete(&rb, &location, &digest);
    let got = ra.get_blob("team/app", &digest);
    assert_eq!(sha256_digest(&got.bytes().unwrap()), digest);
}

/// A request writing slowly, for longer than the purge age: the purge
/// leaves its upload alone (the request holds it), and it completes.
#[test]
fn a_slow_request_outlives_the_purge_age() {
    use std::io::Read;
    let berth = Berth::start_with_env(&[("BERTH_SERVER__UPLOAD_PURGE_AGE", "2s")]);
    Api::admin(&berth).create_projects(&["team"]);
    let registry = berth.registry();
    let data = random_bytes(48 * 1024);
    let digest = sha256_digest(&data);
    let location = registry.start_upload("team/app");
    let path = location.splitn(4, '/').nth(3).unwrap().to_owned();
    let (user, pw) = berth.admin_credentials();
    let auth = berth_tests::registry::base64(format!("{user}:{pw}").as_bytes());
    let mut stream = std::net::TcpStream::connect(berth.host_port()).unwrap();
    write!(
        stream,
        "PATCH /{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        berth.host_port(),
        data.len()
    )
    .unwrap();
    // 4 KiB every half second: six seconds, three purge ages.
    for chunk in data.chunks(4096) {
        stream.write_all(chunk).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let resp = registry
        .http()
        .put(with_query(&location, "digest", &digest))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", text_of(resp));
}
