//! The management API's repositories, artifacts and tags, the audit log and
//! the system endpoints, in Harbor's v2.0 shapes, against the real binary.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use berth_tests::content::{image_index, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use berth_tests::registry::{describe, header};
use berth_tests::server::POLL;
use berth_tests::users::add_user;
use berth_tests::{Berth, Blob, Image, Registry};
use reqwest::blocking::Response;
use serde_json::{json, Value};

const API: &str = "/api/v2.0";
const NEVER: &str = "0001-01-01T00:00:00.000Z";

fn get(r: &Registry, path: &str) -> Response {
    r.http().get(r.url(&format!("{API}{path}"))).send().unwrap()
}

fn delete(r: &Registry, path: &str) -> Response {
    r.http()
        .delete(r.url(&format!("{API}{path}")))
        .send()
        .unwrap()
}

fn post(r: &Registry, path: &str, body: &Value) -> Response {
    r.http()
        .post(r.url(&format!("{API}{path}")))
        .json(body)
        .send()
        .unwrap()
}

/// A 200 with a JSON body.
fn ok_json(resp: Response) -> Value {
    assert_eq!(resp.status(), 200, "{}", describe(resp));
    resp.json().unwrap()
}

/// Asserts Harbor's error body `{"errors":[{"code","message"}]}` with this
/// status and code; returns the message.
fn api_error(resp: Response, status: u16, code: &str) -> String {
    let url = resp.url().to_string();
    let got = resp.status().as_u16();
    let text = resp.text().unwrap();
    assert_eq!(got, status, "{url}: {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url}: error body is not JSON ({e}): {text}"));
    assert_eq!(body["errors"][0]["code"], code, "{url}: {text}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{url}: empty message: {text}");
    message.to_string()
}

fn create_project(r: &Registry, name: &str, public: bool) {
    let body = json!({"project_name": name, "metadata": {"public": public.to_string()}});
    let resp = post(r, "/projects", &body);
    assert_eq!(
        resp.status(),
        201,
        "create project {name}: {}",
        describe(resp)
    );
}

/// Bytes of an image: its manifest, config and layers.
fn image_size(image: &Image) -> u64 {
    image.manifest.size() + image.blobs().iter().map(|b| b.size()).sum::<u64>()
}

fn names(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[key].as_str().unwrap().to_string())
        .collect()
}

/// Polls `f` until it returns `Some`, for at most `limit`.
fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL * 5);
    }
}

#[test]
fn repositories_are_listed_in_pages_read_and_deleted() {
    let berth = Berth::start();
    let r = berth.registry();
    create_project(&r, "team", false);
    for repo in ["team/a", "team/b/c", "team/d"] {
        r.push_image(repo, "v1", &Image::random(1));
    }

    let first = get(&r, "/projects/team/repositories?page=1&page_size=2");
    assert_eq!(header(&first, "x-total-count").as_deref(), Some("3"));
    let link = header(&first, "link").unwrap();
    assert!(
        link.contains("rel=\"next\"") && link.contains("page=2"),
        "{link}"
    );
    assert!(!link.contains("rel=\"prev\""), "{link}");
    let items = ok_json(first);
    assert_eq!(names(&items, "name"), ["team/a", "team/b/c"]);
    let second = get(&r, "/projects/team/repositories?page=2&page_size=2");
    let link = header(&second, "link").unwrap();
    assert!(
        link.contains("rel=\"prev\"") && !link.contains("rel=\"next\""),
        "{link}"
    );
    assert_eq!(names(&ok_json(second), "name"), ["team/d"]);

    let filtered = ok_json(get(&r, "/projects/team/repositories?q=name%3D~b%2F"));
    assert_eq!(names(&filtered, "name"), ["team/b/c"]);
    api_error(
        get(&r, "/projects/team/repositories?q=color%3Dred"),
        400,
        "BAD_REQUEST",
    );

    let project = ok_json(get(&r, "/projects/team"));
    for encoded in ["b%2Fc", "b%252Fc"] {
        let repo = ok_json(get(&r, &format!("/projects/team/repositories/{encoded}")));
        assert_eq!(repo["name"], "team/b/c");
        assert_eq!(repo["project_id"], project["project_id"]);
        assert_eq!(repo["artifact_count"], 1);
        assert_eq!(repo["pull_count"], 0);
        assert_eq!(repo["description"], "");
        assert!(repo["id"].as_i64().unwrap() > 0);
        for key in ["creation_time", "update_time"] {
            assert!(repo[key].as_str().unwrap().ends_with('Z'), "{repo}");
        }
    }
    // By id, too.
    let by_id = format!("/projects/{}/repositories/d", project["project_id"]);
    assert_eq!(ok_json(get(&r, &by_id))["name"], "team/d");
    // Harbor requires the slashes of repository_name to be encoded.
    let msg = api_error(get(&r, "/projects/team/repositories/b/c"), 404, "NOT_FOUND");
    assert!(msg.contains("%2F"), "{msg}");
    api_error(
        get(&r, "/projects/team/repositories/nope"),
        404,
        "NOT_FOUND",
    );
    api_error(
        get(&r, "/projects/team/repositories/Bad_Name"),
        400,
        "BAD_REQUEST",
    );
    api_error(get(&r, "/projects/nope/repositories"), 404, "NOT_FOUND");

    // Cached by a pull first: the delete must still be seen by /v2.
    assert_eq!(r.get_manifest("team/a", "v1").status(), 200);
    assert_eq!(delete(&r, "/projects/team/repositories/a").status(), 200);
    api_error(get(&r, "/projects/team/repositories/a"), 404, "NOT_FOUND");
    assert_eq!(r.get_manifest("team/a", "v1").status(), 404);
    let tags = r.http().get(r.url("/v2/team/a/tags/list")).send().unwrap();
    assert_eq!(tags.status(), 404);
    api_error(
        delete(&r, "/projects/team/repositories/a"),
        404,
        "NOT_FOUND",
    );
    let rest = get(&r, "/projects/team/repositories");
    assert_eq!(header(&rest, "x-total-count").as_deref(), Some("2"));
    // The project can now lose its other repositories and be deleted.
    assert_eq!(
        delete(&r, "/projects/team/repositories/b%2Fc").status(),
        200
    );
    assert_eq!(delete(&r, "/projects/team/repositories/d").status(), 200);
    assert_eq!(delete(&r, "/projects/team").status(), 200);
}

#[test]
fn artifacts_are_listed_read_and_deleted() {
    let berth = Berth::start();
    let r = berth.registry();
    create_project(&r, "team", true);
    let repo = "team/app";
    let one = Image::random(2);
    r.push_image(repo, "v1", &one);
    let two = Image::random(1);
    r.push_image(repo, "v2", &two);
    r.push_manifest(repo, "latest", &two.manifest);
    // An index of two platform images, pushed by digest.
    let (amd, arm) = (Image::random(1), Image::random(1));
    for image in [&amd, &arm] {
        for blob in image.blobs() {
            r.push_blob(repo, blob);
        }
        r.push_manifest(repo, &image.manifest.digest, &image.manifest);
    }
    let index = Blob::new(
        image_index(
            OCI_INDEX,
            &[&amd.manifest, &arm.manifest],
            &["amd64", "arm64"],
        ),
        OCI_INDEX,
    );
    r.push_manifest(repo, "multi", &index);

    let path = "/projects/team/repositories/app/artifacts";
    let resp = get(&r, path);
    assert_eq!(header(&resp, "x-total-count").as_deref(), Some("3"));
    let list = ok_json(resp);
    // Newest push first; the index's children are not listed on their own.
    assert_eq!(
        names(&list, "digest"),
        [
            index.digest.as_str(),
            two.manifest.digest.as_str(),
            one.manifest.digest.as_str()
        ]
    );
    // Oldest push first on request; an order berth does not keep is a 400.
    let oldest = ok_json(get(&r, &format!("{path}?sort=push_time")));
    assert_eq!(
        names(&oldest, "digest"),
        [
            one.manifest.digest.as_str(),
            two.manifest.digest.as_str(),
            index.digest.as_str()
        ]
    );
    let message = api_error(get(&r, &format!("{path}?sort=size")), 400, "BAD_REQUEST");
    assert!(message.contains("-pull_time"), "{message}");
    // Latest pull first: the one pulled leads (pull times are written
    // behind the pull), the never-pulled follow newest push first.
    r.get_manifest(repo, &one.manifest.digest);
    let by_pull = poll(Duration::from_secs(10), || {
        let l = ok_json(get(&r, &format!("{path}?sort=-pull_time")));
        (l[0]["digest"] == one.manifest.digest.as_str()).then_some(l)
    })
    .expect("the pulled artifact first by -pull_time");
    assert_eq!(
        names(&by_pull, "digest"),
        [
            one.manifest.digest.as_str(),
            index.digest.as_str(),
            two.manifest.digest.as_str()
        ]
    );
    let idx = &list[0];
    assert_eq!(idx["type"], "IMAGE");
    assert_eq!(idx["manifest_media_type"], OCI_INDEX);
    assert_eq!(
        idx["size"].as_u64().unwrap(),
        index.size() + image_size(&amd) + image_size(&arm)
    );
    let refs = idx["references"].as_array().unwrap();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0]["child_digest"], amd.manifest.digest.as_str());
    assert_eq!(refs[1]["platform"]["architecture"], "arm64");
    assert_eq!(refs[0]["parent_id"], idx["id"]);
    assert!(refs[0]["child_id"].as_i64().unwrap() > 0);
    let img = &list[1];
    assert_eq!(img["type"], "IMAGE");
    assert_eq!(img["media_type"], OCI_CONFIG);
    assert_eq!(img["manifest_media_type"], OCI_MANIFEST);
    assert_eq!(img["size"].as_u64().unwrap(), image_size(&two));
    assert_eq!(img["repository_name"], repo);
    assert_eq!(img["pull_time"], NEVER);
    assert!(img["push_time"].as_str().unwrap().ends_with('Z'));
    let mut tags = names(&img["tags"], "name");
    tags.sort();
    assert_eq!(tags, ["latest", "v2"]);
    let tag = &img["tags"][0];
    assert_eq!(tag["artifact_id"], img["id"]);
    assert_eq!(tag["repository_id"], img["repository_id"]);
    assert_eq!(tag["immutable"], false);
    assert_eq!(list[2]["size"].as_u64().unwrap(), image_size(&one));

    // Pagination, filters and with_tag.
    let page = get(&r, &format!("{path}?page=2&page_size=2"));
    assert_eq!(header(&page, "x-total-count").as_deref(), Some("3"));
    assert_eq!(
        names(&ok_json(page), "digest"),
        [one.manifest.digest.as_str()]
    );
    let untagged = ok_json(get(&r, &format!("{path}?with_tag=false&page_size=1")));
    assert!(untagged[0]["tags"].is_null(), "{untagged}");
    let v2 = ok_json(get(&r, &format!("{path}?q=tags%3Dv2")));
    assert_eq!(names(&v2, "digest"), [two.manifest.digest.as_str()]);
    let fuzzy = get(&r, &format!("{path}?q=tags%3D~v"));
    assert_eq!(header(&fuzzy, "x-total-count").as_deref(), Some("2"));
    let none = get(&r, &format!("{path}?q=tags%3Dnil"));
    assert_eq!(header(&none, "x-total-count").as_deref(), Some("0"));
    api_error(get(&r, &format!("{path}?q=size%3D1")), 400, "BAD_REQUEST");
    api_error(
        get(&r, &format!("{path}?with_tag=maybe")),
        400,
        "BAD_REQUEST",
    );
    api_error(
        get(&r, "/projects/team/repositories/nope/artifacts"),
        404,
        "NOT_FOUND",
    );

    // One artifact by tag and by digest.
    let by_tag = ok_json(get(&r, &format!("{path}/v1")));
    let by_digest = ok_json(get(&r, &format!("{path}/{}", one.manifest.digest)));
    assert_eq!(by_tag, by_digest);
    assert_eq!(by_tag["digest"], one.manifest.digest.as_str());
    assert_eq!(names(&by_tag["tags"], "name"), ["v1"]);
    // A child of the index can be read by digest.
    let child = ok_json(get(&r, &format!("{path}/{}", arm.manifest.digest)));
    assert_eq!(child["size"].as_u64().unwrap(), image_size(&arm));
    api_error(get(&r, &format!("{path}/nope")), 404, "NOT_FOUND");
    api_error(get(&r, &format!("{path}/sha256:abc")), 400, "BAD_REQUEST");
    api_error(get(&r, &format!("{path}/bad..tag!")), 400, "BAD_REQUEST");

    // A child of an index cannot be deleted alone (Harbor's 412).
    api_error(
        delete(&r, &format!("{path}/{}", amd.manifest.digest)),
        412,
        "PRECONDITION",
    );
    // Deleting by tag deletes the artifact, with all its tags.
    assert_eq!(r.get_manifest(repo, "v1").status(), 200);
    assert_eq!(delete(&r, &format!("{path}/v1")).status(), 200);
    assert_eq!(r.get_manifest(repo, &one.manifest.digest).status(), 404);
    assert_eq!(r.get_manifest(repo, "v1").status(), 404);
    api_error(delete(&r, &format!("{path}/v1")), 404, "NOT_FOUND");
    // Deleting the index takes its untagged children along.
    assert_eq!(
        delete(&r, &format!("{path}/{}", index.digest)).status(),
        200
    );
    for gone in [&index.digest, &amd.manifest.digest, &arm.manifest.digest] {
        assert_eq!(r.get_manifest(repo, gone).status(), 404, "{gone}");
    }
    assert_eq!(r.get_manifest(repo, "latest").status(), 200);
    let repo_json = ok_json(get(&r, "/projects/team/repositories/app"));
    assert_eq!(repo_json["artifact_count"], 1);
}

#[test]
fn tags_are_listed_created_and_deleted() {
    let berth = Berth::start();
    let r = berth.registry();
    let repo = "library/tagged";
    let image = Image::random(1);
    r.push_image(repo, "v1", &image);
    let other = Image::random(1);
    r.push_image(repo, "other", &other);
    let art = format!(
        "/projects/library/repositories/tagged/artifacts/{}",
        image.manifest.digest
    );
    let tags_path = format!("{art}/tags");

    let tags = ok_json(get(&r, &tags_path));
    assert_eq!(names(&tags, "name"), ["v1"]);
    assert_eq!(tags[0]["pull_time"], NEVER);

    let resp = post(&r, &tags_path, &json!({"name": "v2"}));
    assert_eq!(resp.status(), 201, "{}", describe(resp));
    assert!(header(&resp, "location").unwrap().ends_with("/tags/v2"));
    r.assert_manifest(repo, "v2", &image.manifest);
    // Tags are not moved or re-created this way (Harbor's 409).
    api_error(
        post(&r, &tags_path, &json!({"name": "v2"})),
        409,
        "CONFLICT",
    );
    let msg = api_error(
        post(&r, &tags_path, &json!({"name": "other"})),
        409,
        "CONFLICT",
    );
    assert!(msg.contains(&other.manifest.digest), "{msg}");
    r.assert_manifest(repo, "other", &other.manifest);
    api_error(
        post(&r, &tags_path, &json!({"name": ".bad"})),
        400,
        "BAD_REQUEST",
    );
    api_error(post(&r, &tags_path, &json!({})), 400, "BAD_REQUEST");
    api_error(
        post(
            &r,
            "/projects/library/repositories/tagged/artifacts/nope/tags",
            &json!({"name": "x"}),
        ),
        404,
        "NOT_FOUND",
    );
    // By tag works as the reference, too.
    let resp = post(
        &r,
        "/projects/library/repositories/tagged/artifacts/v1/tags",
        &json!({"name": "v3"}),
    );
    assert_eq!(resp.status(), 201, "{}", describe(resp));

    let all = get(&r, &format!("{tags_path}?page_size=2"));
    assert_eq!(header(&all, "x-total-count").as_deref(), Some("3"));
    assert!(header(&all, "link").unwrap().contains("rel=\"next\""));
    let v = ok_json(get(&r, &format!("{tags_path}?q=name%3D~v")));
    assert_eq!(v.as_array().unwrap().len(), 3);
    let exact = ok_json(get(&r, &format!("{tags_path}?q=name%3Dv2")));
    assert_eq!(names(&exact, "name"), ["v2"]);

    assert_eq!(delete(&r, &format!("{tags_path}/v2")).status(), 200);
    assert_eq!(r.get_manifest(repo, "v2").status(), 404);
    r.assert_manifest(repo, "v1", &image.manifest);
    api_error(delete(&r, &format!("{tags_path}/v2")), 404, "NOT_FOUND");
    // A tag on another artifact is not this artifact's to delete.
    api_error(delete(&r, &format!("{tags_path}/other")), 404, "NOT_FOUND");
    api_error(delete(&r, &format!("{tags_path}/-bad")), 400, "BAD_REQUEST");
    r.assert_manifest(repo, "other", &other.manifest);
}

#[test]
fn private_repositories_are_hidden_from_outsiders() {
    let berth = Berth::start();
    let admin = berth.registry();
    create_project(&admin, "secret", false);
    admin.push_image("secret/app", "v1", &Image::random(1));
    admin.push_image("library/open", "v1", &Image::random(1));
    add_user(&berth, "outsider", "outsider-password", false);
    let outsider = Registry::with_basic_auth(&berth.url(), "outsider", "outsider-password");
    let anonymous = Registry::new(&berth.url());

    for path in [
        "/projects/secret/repositories",
        "/projects/secret/repositories/app",
        "/projects/secret/repositories/app/artifacts",
        "/projects/secret/repositories/app/artifacts/v1",
        "/projects/secret/repositories/app/artifacts/v1/tags",
    ] {
        let msg = api_error(get(&outsider, path), 404, "NOT_FOUND");
        assert!(msg.contains("secret"), "{path}: {msg}");
        api_error(get(&anonymous, path), 401, "UNAUTHORIZED");
    }
    api_error(
        delete(&outsider, "/projects/secret/repositories/app"),
        404,
        "NOT_FOUND",
    );
    assert_eq!(admin.get_manifest("secret/app", "v1").status(), 200);

    // A public project is readable, not writable, by non-members.
    for who in [&outsider, &anonymous] {
        let list = ok_json(get(who, "/projects/library/repositories"));
        assert_eq!(names(&list, "name"), ["library/open"]);
        ok_json(get(who, "/projects/library/repositories/open/artifacts/v1"));
    }
    api_error(
        delete(&outsider, "/projects/library/repositories/open"),
        403,
        "FORBIDDEN",
    );
    api_error(
        post(
            &outsider,
            "/projects/library/repositories/open/artifacts/v1/tags",
            &json!({"name": "mine"}),
        ),
        403,
        "FORBIDDEN",
    );

    // Search shows only what the caller may see.
    let found = ok_json(get(&outsider, "/search?q=r"));
    assert_eq!(names(&found["project"], "name"), ["library"]);
    assert_eq!(
        names(&found["repository"], "repository_name"),
        ["library/open"]
    );
    let found = ok_json(get(&admin, "/search?q=r"));
    assert_eq!(names(&found["project"], "name"), ["library", "secret"]);
    let repos = &found["repository"];
    assert_eq!(
        names(repos, "repository_name"),
        ["library/open", "secret/app"]
    );
    assert_eq!(repos[1]["project_name"], "secret");
    assert_eq!(repos[1]["project_public"], false);
    assert_eq!(repos[1]["artifact_count"], 1);
    assert!(repos[1]["project_id"].as_i64().unwrap() > 0);
    let found = ok_json(get(&anonymous, "/search?q=secret"));
    assert_eq!(found, json!({"project": [], "repository": []}));
    api_error(get(&admin, "/search"), 400, "BAD_REQUEST");
}

#[test]
fn audit_log_shows_api_changes() {
    let berth = Berth::start();
    let r = berth.registry();
    create_project(&r, "team", false);
    let image = Image::random(1);
    r.push_image("team/app", "v1", &image);
    r.push_image("team/gone", "v1", &Image::random(1));
    let art = format!(
        "/projects/team/repositories/app/artifacts/{}",
        image.manifest.digest
    );
    assert_eq!(
        post(&r, &format!("{art}/tags"), &json!({"name": "v2"})).status(),
        201
    );
    assert_eq!(delete(&r, &format!("{art}/tags/v2")).status(), 200);
    assert_eq!(delete(&r, &art).status(), 200);
    assert_eq!(delete(&r, "/projects/team/repositories/gone").status(), 200);

    // Records are written off the request path: poll for them.
    let deletes = poll(Duration::from_secs(10), || {
        let resp = get(&r, "/audit-logs?q=operation%3Ddelete&page_size=100");
        let total = header(&resp, "x-total-count")?;
        (total == "3").then(|| ok_json(resp))
    })
    .unwrap_or_else(|| panic!("{}", describe(get(&r, "/audit-logs?page_size=100"))));
    let resources = names(&deletes, "resource");
    assert_eq!(
        resources,
        [
            "team/gone".to_string(),
            format!("team/app@{}", image.manifest.digest),
            "team/app:v2".to_string(),
        ],
        "newest first"
    );
    assert_eq!(
        names(&deletes, "resource_type"),
        ["repository", "artifact", "tag"]
    );
    let entry = &deletes[1];
    assert_eq!(entry["username"], "admin");
    assert_eq!(entry["operation"], "delete");
    assert_eq!(entry["operation_result"], true);
    assert!(entry["id"].as_i64().unwrap() > 0);
    assert!(entry["op_time"].as_str().unwrap().ends_with('Z'), "{entry}");
    assert!(entry["client_ip"].is_string(), "{entry}");

    let created = ok_json(get(
        &r,
        "/projects/team/logs?q=operation%3Dcreate,resource_type%3Dtag",
    ));
    assert_eq!(names(&created, "resource"), ["team/app:v2"]);
    let fuzzy = get(
        &r,
        "/projects/team/logs?q=operation%3Ddelete,resource%3D~gone",
    );
    assert_eq!(header(&fuzzy, "x-total-count").as_deref(), Some("1"));
    let by_user = get(&r, "/audit-logs?q=username%3Dnobody");
    assert_eq!(header(&by_user, "x-total-count").as_deref(), Some("0"));
    let future = get(
        &r,
        "/audit-logs?q=op_time%3D%5B2999-01-01%2000%3A00%3A00~2999-12-31%2000%3A00%3A00%5D",
    );
    assert_eq!(header(&future, "x-total-count").as_deref(), Some("0"));
    let past = get(
        &r,
        "/audit-logs?q=operation%3Ddelete,op_time%3D%5B2000-01-01T00%3A00%3A00Z~2999-01-01T00%3A00%3A00Z%5D",
    );
    assert_eq!(header(&past, "x-total-count").as_deref(), Some("3"));
    let paged = get(&r, "/audit-logs?q=operation%3Ddelete&page=1&page_size=2");
    assert!(header(&paged, "link").unwrap().contains("rel=\"next\""));
    api_error(get(&r, "/audit-logs?q=color%3Dred"), 400, "BAD_REQUEST");
    api_error(
        get(&r, "/audit-logs?q=op_time%3D%5Bsoon~%5D"),
        400,
        "BAD_REQUEST",
    );

    // Pushes are recorded by the registry API, where that is wired up.
    let pushes = poll(Duration::from_secs(5), || {
        let list = ok_json(get(
            &r,
            "/projects/team/logs?q=operation%3Dpush&page_size=100",
        ));
        (!list.as_array().unwrap().is_empty()).then_some(list)
    });
    if let Some(pushes) = pushes {
        assert!(
            names(&pushes, "resource")
                .iter()
                .any(|res| res.starts_with("team/app")),
            "{pushes}"
        );
    }

    // Only administrators read the whole log; members read their project's.
    add_user(&berth, "alice", "alice-password", false);
    let alice = Registry::with_basic_auth(&berth.url(), "alice", "alice-password");
    api_error(get(&alice, "/audit-logs"), 403, "FORBIDDEN");
    api_error(
        get(&Registry::new(&berth.url()), "/audit-logs"),
        401,
        "UNAUTHORIZED",
    );
    api_error(get(&alice, "/projects/team/logs"), 404, "NOT_FOUND");
    let member = json!({"role_id": 2, "member_user": {"username": "alice"}});
    assert_eq!(post(&r, "/projects/team/members", &member).status(), 201);
    let mine = get(&alice, "/projects/team/logs?q=operation%3Ddelete");
    assert_eq!(header(&mine, "x-total-count").as_deref(), Some("3"));
}

#[test]
fn system_endpoints() {
    let berth = Berth::start();
    let anonymous = Registry::new(&berth.url());
    let ping = get(&anonymous, "/ping");
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().unwrap(), "Pong");

    let health = ok_json(get(&anonymous, "/health"));
    assert_eq!(health["status"], "healthy", "{health}");
    let components = health["components"].as_array().unwrap();
    assert!(
        components
            .iter()
            .any(|c| c["name"] == "database" && c["status"] == "healthy"),
        "{health}"
    );

    let info = ok_json(get(&anonymous, "/systeminfo"));
    assert!(
        info["harbor_version"]
            .as_str()
            .unwrap()
            .starts_with("berth-"),
        "{info}"
    );
    assert_eq!(info["auth_mode"], "db_auth");
    assert_eq!(info["project_creation_restriction"], "everyone");
    for key in [
        "self_registration",
        "has_ca_root",
        "read_only",
        "with_chartmuseum",
    ] {
        assert_eq!(info[key], false, "{key}: {info}");
    }
    // Webhooks exist.
    assert_eq!(info["notification_enable"], true, "{info}");
    assert!(info["current_time"].as_str().unwrap().ends_with('Z'));

    let doc = ok_json(get(&anonymous, "/openapi.json"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v2.0/projects/{project_name_or_id}/repositories",
        "/api/v2.0/projects/{project_name_or_id}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}",
        "/api/v2.0/audit-logs",
        "/api/v2.0/projects/{project_name_or_id}/logs",
        "/api/v2.0/health",
        "/api/v2.0/systeminfo",
        "/api/v2.0/search",
        "/api/v2.0/ping",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Repository",
        "Artifact",
        "Tag",
        "AuditLog",
        "OverallHealthStatus",
        "GeneralInfo",
        "Search",
    ] {
        assert!(schemas.contains_key(schema), "{schema} missing");
    }
}
