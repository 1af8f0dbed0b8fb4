//! Tags list, catalog, repository names and their validation.
#![allow(clippy::unwrap_used)]

use berth_tests::content::OCI_MANIFEST;
use berth_tests::registry::{assert_error, assert_error_body, header};
use berth_tests::{Api, Berth, Blob, Image, Registry};
use serde_json::Value;

fn setup() -> (Berth, Registry) {
    let berth = Berth::start();
    // Pushes go to existing projects only. `no` stays empty: its
    // repositories are unknown (404), not in a missing project (403).
    Api::admin(&berth).create_projects(&[
        "team", "a", "alpha", "bravo", "charlie", "delta", "echo", "one", "x.y", "no",
    ]);
    let registry = berth.registry();
    (berth, registry)
}

/// Parses `<path?query>; rel="next"` and checks the path and query.
fn next_link(link: &str, path: &str, n: usize, last: &str) -> String {
    let (target, rest) = link
        .strip_prefix('<')
        .and_then(|l| l.split_once('>'))
        .unwrap_or_else(|| panic!("Link {link:?} is not <...>; rel=\"next\""));
    assert_eq!(rest.replace(' ', ""), ";rel=\"next\"", "Link {link:?}");
    let (p, query) = target.split_once('?').unwrap_or((target, ""));
    assert_eq!(p, path, "path of Link {link:?}");
    let mut params: Vec<String> = query.split('&').map(percent_decode).collect();
    params.sort();
    let mut expected = vec![format!("n={n}"), format!("last={last}")];
    expected.sort();
    assert_eq!(params, expected, "query of Link {link:?}");
    target.to_string()
}

/// Decodes %XX escapes (a `/` in `last` may come escaped).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn list(registry: &Registry, url: &str, key: &str) -> (Vec<String>, Option<String>) {
    let resp = registry.http().get(url).send().unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    let link = header(&resp, "link");
    let body: Value = resp.json().unwrap();
    let items = body[key]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (items, link)
}

#[test]
fn tags_list_with_pagination() {
    let (_berth, registry) = setup();
    let repo = "team/paged";
    let image = Image::random(1);
    let tags: Vec<String> = (1..=7).map(|i| format!("t{i:02}")).collect();
    registry.push_image(repo, &tags[6], &image);
    for tag in tags.iter().rev().skip(1) {
        registry.push_manifest(repo, tag, &image.manifest);
    }
    let resp = registry
        .http()
        .get(registry.url(&format!("/v2/{repo}/tags/list")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["name"], repo);
    assert_eq!(registry.tags(repo), tags, "all tags, in lexical order");

    let path = format!("/v2/{repo}/tags/list");
    let (page, link) = list(&registry, &registry.url(&format!("{path}?n=3")), "tags");
    assert_eq!(page, tags[0..3]);
    let next = next_link(&link.expect("Link after page 1"), &path, 3, "t03");
    let (page, link) = list(&registry, &registry.url(&next), "tags");
    assert_eq!(page, tags[3..6]);
    let next = next_link(&link.expect("Link after page 2"), &path, 3, "t06");
    let (page, link) = list(&registry, &registry.url(&next), "tags");
    assert_eq!(page, tags[6..7]);
    assert!(link.is_none(), "no Link after the last page: {link:?}");

    let (page, _) = list(
        &registry,
        &registry.url(&format!("{path}?n=2&last=t04")),
        "tags",
    );
    assert_eq!(page, tags[4..6]);
    let (page, link) = list(
        &registry,
        &registry.url(&format!("{path}?last=t05")),
        "tags",
    );
    assert_eq!(page, tags[5..7]);
    assert!(link.is_none());
    let (page, link) = list(&registry, &registry.url(&format!("{path}?n=10")), "tags");
    assert_eq!(page, tags);
    assert!(link.is_none(), "n larger than the list: no Link");
}

#[test]
fn tags_list_of_unknown_repo_is_404_name_unknown() {
    let (_berth, registry) = setup();
    let resp = registry
        .http()
        .get(registry.url("/v2/no/such/repo/tags/list"))
        .send()
        .unwrap();
    assert_error(resp, 404, &["NAME_UNKNOWN"]);
}

#[test]
fn catalog_with_pagination() {
    let (_berth, registry) = setup();
    let mut repos = vec![
        "alpha/one",
        "bravo/two",
        "charlie/three/deep",
        "delta",
        "echo/five",
    ];
    for repo in &repos {
        registry.push_image(repo, "v1", &Image::random(1));
    }
    repos.sort();
    let (all, link) = list(&registry, &registry.url("/v2/_catalog"), "repositories");
    assert_eq!(all, repos);
    assert!(link.is_none());

    let mut seen = Vec::new();
    let mut url = registry.url("/v2/_catalog?n=2");
    let mut pages = 0;
    loop {
        let (page, link) = list(&registry, &url, "repositories");
        assert!(page.len() <= 2, "page of {} entries for n=2", page.len());
        pages += 1;
        seen.extend(page);
        match link {
            Some(link) => {
                let last = seen.last().unwrap().clone();
                url = registry.url(&next_link(&link, "/v2/_catalog", 2, &last));
            }
            None => break,
        }
        assert!(pages < 10, "catalog pagination does not end");
    }
    assert_eq!(seen, repos, "pages together");
    assert_eq!(pages, 3);
}

/// `n=0` asks for an empty page. A `Link` on it would point at the same
/// empty page again, and a client that follows links would never stop.
#[test]
fn zero_page_size_is_an_empty_page_without_link() {
    let (_berth, registry) = setup();
    let repo = "team/zero";
    registry.push_image(repo, "v1", &Image::random(1));
    let (page, link) = list(
        &registry,
        &registry.url(&format!("/v2/{repo}/tags/list?n=0")),
        "tags",
    );
    assert!(page.is_empty(), "tags for n=0: {page:?}");
    assert!(link.is_none(), "no Link on an n=0 tags page: {link:?}");
    let (page, link) = list(&registry, &registry.url("/v2/_catalog?n=0"), "repositories");
    assert!(page.is_empty(), "catalog for n=0: {page:?}");
    assert!(link.is_none(), "no Link on an n=0 catalog page: {link:?}");
}

#[test]
fn repository_names_with_many_segments() {
    let (_berth, registry) = setup();
    let repos = [
        "a/b/c/d/e/f/g/h",
        "one/two/three/four/five/six/seven/eight/nine/ten",
        // Path words of the API used as name components.
        "team/blobs/uploads/manifests/tags/list",
        "x.y/z_w/v-u/t__s/r.q-p",
    ];
    for repo in repos {
        let image = Image::random(1);
        registry.push_image(repo, "v1", &image);
        registry.assert_image(repo, "v1", &image);
        assert_eq!(
            registry.tags(repo),
            vec!["v1".to_string()],
            "tags of {repo}"
        );
        let blob = Blob::random(100);
        let location = registry.start_upload(repo);
        assert!(
            location.contains(&format!("/v2/{repo}/blobs/uploads/")),
            "Location {location}"
        );
        registry.push_blob(repo, &blob);
        registry.assert_blob(repo, &blob);
    }
    let (all, _) = list(&registry, &registry.url("/v2/_catalog"), "repositories");
    for repo in repos {
        assert!(
            all.contains(&repo.to_string()),
            "{repo} in the catalog {all:?}"
        );
    }
}

#[test]
fn invalid_names_are_400_name_invalid() {
    let (berth, registry) = setup();
    let image = Image::random(1);
    let names = [
        "Team/App",
        "team/../app",
        "team/./app",
        "team//app",
        "team/app-",
        "-team/app",
        "team/a..b",
        "team/app_",
    ];
    for name in names {
        for (method, path) in [
            ("GET", format!("/v2/{name}/manifests/latest")),
            ("GET", format!("/v2/{name}/tags/list")),
            ("POST", format!("/v2/{name}/blobs/uploads/")),
            ("GET", format!("/v2/{name}/blobs/{}", image.config.digest)),
        ] {
            // --path-as-is: curl must not resolve the dot segments itself.
            let resp = registry.curl(&[
                "--path-as-is",
                "-X",
                method,
                &format!("{}{path}", berth.url()),
            ]);
            assert_eq!(
                resp.status,
                400,
                "{method} {path}: {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
            let body = assert_error_body(&String::from_utf8_lossy(&resp.body), &path);
            assert_eq!(body["errors"][0]["code"], "NAME_INVALID", "{method} {path}");
        }
    }
    // A name longer than 255 characters.
    let long = format!("team/{}", "a".repeat(260));
    let resp = registry.put_manifest(&long, "v1", OCI_MANIFEST, &image.manifest.data);
    assert_error(resp, 400, &["NAME_INVALID"]);
}

#[test]
fn error_bodies_are_oci_json() {
    let (berth, registry) = setup();
    // A spread of errors from different endpoints, read raw from the wire.
    let paths = [
        ("GET", "/v2/team/x/manifests/latest"),
        ("GET", "/v2/team/x/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000"),
        ("PATCH", "/v2/team/x/blobs/uploads/nonexistent"),
        ("PUT", "/v2/team/x/manifests/v1"),
        ("GET", "/v2/UPPER/tags/list"),
    ];
    for (method, path) in paths {
        let url = format!("{}{path}", berth.url());
        let resp = if method == "GET" {
            registry.curl(&[&url])
        } else {
            registry.curl(&["-X", method, "--data-binary", "", &url])
        };
        assert!(
            (400..500).contains(&resp.status),
            "{method} {path}: {}",
            resp.status
        );
        assert!(
            resp.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{method} {path}: Content-Type {:?}",
            resp.header("content-type")
        );
        assert_error_body(&String::from_utf8_lossy(&resp.body), path);
    }
}
