//! Three berth instances sharing one PostgreSQL database and one data
//! directory, behind haproxy (round robin, every request anywhere): real
//! clients push and pull through it, changes made on one instance take
//! effect on the others at once, and an instance killed with -9 during a
//! push loses nothing, GC on one instance never takes what the others
//! push or mount, and a project's quota holds against pushes through all.
#![allow(clippy::unwrap_used)]

#[path = "support/gc.rs"]
mod gc_support;
#[path = "support/gc_stress.rs"]
mod stress;

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_tests::cluster::Cluster;
use berth_tests::content::random_layer;
use berth_tests::registry::{http_client, Registry};
use berth_tests::server::POLL;
use berth_tests::tools::{
    layout_digest, run, skopeo_copy, skopeo_login, text, write_oci_layout, Podman,
};
use berth_tests::{Api, Image};

/// A change announced by one instance reaches the others within this.
const PROPAGATION: Duration = Duration::from_secs(1);

fn start(n: usize) -> (Cluster, Api) {
    let cluster = Cluster::start(n);
    let (user, pw) = cluster.admin_credentials();
    let api = Api::at(&cluster.url(), user, pw);
    api.create_projects(&["team"]);
    (cluster, api)
}

fn ok(what: &str, out: &std::process::Output) {
    assert!(out.status.success(), "{what}: {}", text(out));
}

/// Polls `done` until it holds; how long that took. Panics past `limit`.
fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if done() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn skopeo_and_podman_push_and_pull_through_any_instance() {
    let (cluster, _api) = start(3);
    let (user, pw) = cluster.admin_credentials();
    let scratch = cluster.scratch_dir();
    let image = Image::random(3);
    let layout = write_oci_layout(&scratch.join("layout"), &image, "1.0");
    let authfile = scratch.join("auth.json");
    ok(
        "skopeo login",
        &skopeo_login(&authfile, &cluster.host_port(), user, pw),
    );
    let dest = format!("docker://{}/team/app:1.0", cluster.host_port());
    ok("skopeo copy", &skopeo_copy(&authfile, &layout, &dest));
    let digest = layout_digest(&scratch.join("layout"), "1.0");

    // Every instance serves the image whole, by tag and by digest.
    for node in &cluster.nodes {
        let registry = node.registry();
        registry.assert_image("team/app", "1.0", &image);
        registry.assert_image("team/app", &digest, &image);
    }

    // podman pulls it back through the balancer; its layers arrive intact.
    let podman = Podman::new(&scratch.join("podman"));
    ok(
        "podman login",
        &podman.login(&cluster.host_port(), user, pw),
    );
    let reference = format!("{}/team/app:1.0", cluster.host_port());
    ok(
        "podman pull",
        &podman.run(&["pull", "--tls-verify=false", &reference], None),
    );
    let out = podman.run(
        &["image", "inspect", "--format", "{{.Digest}}", &reference],
        None,
    );
    ok("podman inspect", &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);

    // A bearer token issued by one instance is accepted by every other.
    let token = {
        let resp = http_client(None)
            .get(format!(
                "{}/service/token?service=berth&scope=repository:team/app:pull",
                cluster.nodes[0].url()
            ))
            .basic_auth(user, Some(pw))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().unwrap();
        body["token"].as_str().unwrap().to_owned()
    };
    for node in &cluster.nodes {
        let resp = http_client(None)
            .get(format!("{}/v2/team/app/manifests/1.0", node.url()))
            .bearer_auth(&token)
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "token of node 0 at {}", node.url());
    }
}

/// docker pushes and pulls through the balancer, each of its requests
/// landing on any instance.
#[test]
fn docker_pushes_and_pulls_through_any_instance() {
    if let Some(why) = berth_tests::tools::docker_unavailable() {
        println!("skipping docker test: {why}");
        return;
    }
    let (cluster, _api) = start(3);
    let (user, pw) = cluster.admin_credentials();
    berth_tests::tools::docker_push_and_pull(
        &cluster.host_port(),
        user,
        pw,
        cluster.scratch_dir(),
        &cluster.registry_as(user, pw),
    );
}

/// The GC stress test with its pushes, mounts and deletes going through
/// the balancer to all three instances while GC runs on the third: every
/// acknowledged image pulls whole afterwards, 0 lost.
#[test]
fn pushes_mounts_and_deletes_racing_gc_on_another_instance_lose_nothing() {
    let cluster = Cluster::start_with_env(3, stress::ENV);
    stress::run(stress::Target {
        berth: &cluster.nodes[0],
        front: cluster.host_port(),
        gc_on: &cluster.nodes[2],
        iterations: 10,
    });
}

/// Twelve skopeo pushes at once through the balancer: nine into a project
/// whose quota fits about three of them, three into another project.
/// The first project's usage never passes its limit, ends exactly at what
/// it holds (as every instance reports it), and the refusals say why; the
/// other project's pushes all go through beside them.
#[test]
fn concurrent_pushes_through_every_instance_stay_within_the_quota() {
    const MIB: u64 = 1024 * 1024;
    let cluster = Cluster::start(3);
    let (user, pw) = cluster.admin_credentials();
    let api = Api::at(&cluster.url(), user, pw);
    let team = api.create_project_with_quota("team", MIB);
    api.create_project("free", false);
    let images: Vec<(String, Image)> = (0..12)
        .map(|i| {
            let repo = if i < 9 {
                format!("team/app{}", i % 3)
            } else {
                format!("free/app{i}")
            };
            (repo, Image::with_layers(vec![random_layer(1, 300_000)]))
        })
        .collect();
    let creds = format!("{user}:{pw}");
    let push = |repo: &str, image: &Image| -> Output {
        let scratch = cluster.scratch_dir();
        let host = cluster.host_port();
        berth_tests::tools::skopeo_push_once(scratch, image, &host, &format!("{repo}:v1"), &creds)
    };
    let watching = AtomicBool::new(true);
    let (outcomes, max_seen) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            // Through the balancer: each reading asks another instance.
            let mut max = 0;
            while watching.load(Ordering::SeqCst) {
                max = max.max(api.used_storage(team));
                std::thread::sleep(POLL);
            }
            max
        });
        let pushes: Vec<_> = images
            .iter()
            .map(|(repo, image)| s.spawn(move || push(repo, image)))
            .collect();
        let outcomes: Vec<Output> = pushes.into_iter().map(|h| h.join().unwrap()).collect();
        watching.store(false, Ordering::SeqCst);
        (outcomes, watcher.join().unwrap())
    });
    assert!(max_seen <= MIB, "usage reached {max_seen} over {MIB}");

    let (team_outcomes, free_outcomes) = outcomes.split_at(9);
    for out in free_outcomes {
        ok("a push to the project without a limit", out);
    }
    let fitted = team_outcomes.iter().filter(|o| o.status.success()).count();
    assert!(fitted >= 1, "no push fitted: {}", text(&team_outcomes[0]));
    let refused: Vec<&Output> = team_outcomes
        .iter()
        .filter(|o| !o.status.success())
        .collect();
    assert!(
        !refused.is_empty(),
        "nine pushes of ~300 KB fitted in 1 MiB"
    );
    for out in refused {
        assert!(
            text(out).contains("project `team` would exceed its storage quota"),
            "{}",
            text(out)
        );
    }
    let expected: u64 = cluster
        .registry_as(user, pw)
        .held(&images[..9])
        .values()
        .sum();
    assert!(expected <= MIB);
    for node in &cluster.nodes {
        let seen = Api::at(&node.url(), user, pw).used_storage(team);
        assert_eq!(seen, expected, "usage at {}", node.url());
    }
    eprintln!("quota across instances: {fitted} of 9 pushes fitted, usage {expected} of {MIB}, highest seen {max_seen}");
}

/// A tag deleted through one instance is gone on the others at once,
/// although each had it in its cache (which alone would keep it for
/// seconds): the deleting instance announces the change.
#[test]
fn a_deleted_tag_and_a_disabled_user_take_effect_everywhere_within_a_second() {
    let (cluster, api) = start(3);
    let image = Image::random(1);
    cluster.nodes[0]
        .registry()
        .push_image("team/app", "doomed", &image);
    // Each instance reads the tag, so each has it cached.
    for node in &cluster.nodes {
        let resp = node.registry().get_manifest("team/app", "doomed");
        assert_eq!(resp.status(), 200);
    }
    let resp = cluster.nodes[0]
        .registry()
        .http()
        .delete(
            cluster.nodes[0]
                .registry()
                .url("/v2/team/app/manifests/doomed"),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    for node in &cluster.nodes[1..] {
        let registry = node.registry();
        let took = within(
            PROPAGATION,
            "tag deletion reaching another instance",
            || registry.get_manifest("team/app", "doomed").status() == 404,
        );
        eprintln!("tag deletion seen by {} after {took:?}", node.url());
    }

    // A user logs in on every instance (each caches the login), then is
    // disabled through one: the others refuse the next request at once.
    let (status, _, body) = api.post(
        "/users",
        &serde_json::json!({"username": "carol", "password": "Carol-pw-12345",
                            "email": "carol@example.org", "realname": "Carol"}),
    );
    assert_eq!(status, 201, "{body}");
    let carol: Vec<Registry> = cluster
        .nodes
        .iter()
        .map(|n| Registry::with_basic_auth(&n.url(), "carol", "Carol-pw-12345"))
        .collect();
    for r in &carol {
        assert_eq!(r.http().get(r.url("/v2/")).send().unwrap().status(), 200);
    }
    let out = cluster.nodes[0]
        .command(&["user", "disable", "carol"])
        .output()
        .unwrap();
    ok("berth user disable", &out);
    for r in &carol[1..] {
        let took = within(
            PROPAGATION,
            "a disabled user reaching another instance",
            || r.http().get(r.url("/v2/")).send().unwrap().status() == 401,
        );
        eprintln!("disabled user refused by {} after {took:?}", r.base());
    }
}

/// A client that deletes through one instance and asks another right
/// after (the next request behind a round-robin balancer) is told it is
/// gone, though that instance had it cached: a delete answers only once
/// every instance dropped it (what the OCI conformance suite checks).
#[test]
fn what_a_delete_removed_is_gone_everywhere_when_it_answers() {
    let (cluster, _api) = start(3);
    let nodes: Vec<Registry> = cluster.nodes.iter().map(|n| n.registry()).collect();
    let (a, others) = (&nodes[0], &nodes[1..]);
    let image = Image::random(1);
    let digest = image.manifest.digest.clone();
    let layer = image.layers[0].blob.digest.clone();
    let delete = |path: String| {
        let resp = a.http().delete(a.url(&path)).send().unwrap();
        assert_eq!(resp.status(), 202, "DELETE {path}");
    };
    for round in 0..5 {
        let tag = format!("t{round}");
        a.push_image("team/app", &tag, &image);
        let cache_everything = || {
            for r in others {
                assert_eq!(r.get_manifest("team/app", &tag).status(), 200);
                assert_eq!(r.get_manifest("team/app", &digest).status(), 200);
                assert_eq!(r.head_blob("team/app", &layer).status(), 200);
            }
        };
        cache_everything();
        delete(format!("/v2/team/app/manifests/{tag}"));
        for r in others {
            assert_eq!(
                r.get_manifest("team/app", &tag).status(),
                404,
                "round {round}: tag"
            );
        }
        a.push_manifest("team/app", &tag, &image.manifest);
        cache_everything();
        delete(format!("/v2/team/app/manifests/{digest}"));
        for r in others {
            let (by_tag, by_digest) = (
                r.get_manifest("team/app", &tag).status().as_u16(),
                r.get_manifest("team/app", &digest).status().as_u16(),
            );
            assert_eq!((by_tag, by_digest), (404, 404), "round {round}: manifest");
        }
        delete(format!("/v2/team/app/blobs/{layer}"));
        for r in others {
            assert_eq!(
                r.head_blob("team/app", &layer).status(),
                404,
                "round {round}: blob"
            );
        }
    }
}

/// Any login to the database server may LISTEN and NOTIFY on berth's
/// channel, and name its connection like berth's listeners. Such a login,
/// without rights on berth's tables, floods the channel with unsigned
/// barriers, acknowledgements and changes while holding a connection named
/// like a listener: a delete still answers only when every instance
/// dropped what it deleted, and no instance ran out of time waiting.
#[test]
fn a_database_login_without_rights_can_neither_forge_nor_stall_settling() {
    let (cluster, _api) = start(3);
    let pg = berth_tests::postgres::shared();
    let db = cluster.nodes[0].sql("SELECT current_database();");
    let db = db.trim();
    let role = format!("mallory_{}", berth_tests::content::random_suffix());
    pg.psql(db, &format!("CREATE ROLE {role} LOGIN"));
    let port = pg.port().to_string();
    let as_mallory = |sql: &str| {
        std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                &role,
                "-d",
                db,
            ])
            .args(["-c", sql])
            .env("PGAPPNAME", "berth-listen")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut named = as_mallory("SELECT pg_sleep(60)");
    within(Duration::from_secs(10), "mallory's connection", || {
        pg.psql(
            db,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"),
        )
        .trim()
            == "1"
    });
    let now_ms = "(extract(epoch from now()) * 1000)::bigint";
    let flood = as_mallory(&format!(
        "SELECT pg_notify('berth_changes', '{{\"kind\":\"barrier\",\"id\":' || g || ',\"at\":' || {now_ms} || '}}'), \
                pg_notify('berth_changes', '00.{{\"kind\":\"ack\",\"id\":' || g || ',\"by\":' || g || '}}'), \
                pg_notify('berth_changes', '{{\"kind\":\"everything\"}}') \
         FROM generate_series(1, 3000) g"
    ));
    let nodes: Vec<Registry> = cluster.nodes.iter().map(|n| n.registry()).collect();
    let image = Image::random(1);
    for round in 0..5 {
        let tag = format!("t{round}");
        nodes[0].push_image("team/app", &tag, &image);
        for r in &nodes[1..] {
            assert_eq!(r.get_manifest("team/app", &tag).status(), 200);
        }
        let resp = nodes[0]
            .http()
            .delete(nodes[0].url(&format!("/v2/team/app/manifests/{tag}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
        for r in &nodes[1..] {
            assert_eq!(
                r.get_manifest("team/app", &tag).status(),
                404,
                "round {round}"
            );
        }
    }
    let _ = named.kill();
    let _ = named.wait();
    pg.psql(
        db,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"),
    );
    let _ = flood.wait_with_output();
    for node in &cluster.nodes {
        let log = node.log_tail(10_000);
        assert!(
            !log.contains("not every berth process confirmed"),
            "a settle ran out of time at {}: {}",
            node.url(),
            node.log_problems(5)
        );
    }
}

/// skopeo pushes a large image through the balancer while one instance
/// is killed with -9; the push completes through the others (skopeo
/// retries), and what is stored is whole on every surviving instance.
#[test]
fn an_instance_killed_during_a_push_loses_nothing() {
    let (mut cluster, _api) = start(3);
    let (user, pw) = cluster.admin_credentials();
    let scratch = cluster.scratch_dir().to_path_buf();
    let image = Image::with_layers(
        (0..4)
            .map(|_| berth_tests::content::random_layer(4, 4 * 1024 * 1024))
            .collect(),
    );
    let layout = write_oci_layout(&scratch.join("layout"), &image, "big");
    let authfile = scratch.join("auth.json");
    ok(
        "skopeo login",
        &skopeo_login(&authfile, &cluster.host_port(), user, pw),
    );
    let dest = format!("docker://{}/team/big:1", cluster.host_port());
    let authfile_arg = authfile.to_string_lossy().into_owned();
    let copy = move || {
        run(
            "skopeo",
            &[
                "--insecure-policy",
                "copy",
                "--retry-times",
                "5",
                "--dest-tls-verify=false",
                "--authfile",
                &authfile_arg,
                &layout,
                &dest,
            ],
            &[],
            None,
        )
    };
    let again = copy.clone();
    let push = std::thread::spawn(copy);
    // Kill an instance once the push is under way (an upload session is
    // open: in the database whichever store holds the bytes).
    within(Duration::from_secs(60), "the push to begin", || {
        cluster.nodes[0].sql("SELECT COUNT(*) FROM uploads").trim() != "0" || push.is_finished()
    });
    assert!(
        !push.is_finished(),
        "the push ended before an instance was killed"
    );
    cluster.nodes[1].kill9();
    let out = push.join().unwrap();
    cluster.wait_up(2);
    if !out.status.success() {
        // skopeo retries a cut connection itself, but not an answer the
        // balancer gave for the request the dead instance was serving
        // (502): then nothing of the image is visible, and the user's
        // second push completes through the others.
        assert!(text(&out).contains("502"), "{}", text(&out));
        for node in [&cluster.nodes[0], &cluster.nodes[2]] {
            let resp = node.registry().get_manifest("team/big", "1");
            assert_eq!(resp.status(), 404, "a partial push is visible");
        }
        ok("skopeo copy again after an instance was killed", &again());
    }
    for node in [&cluster.nodes[0], &cluster.nodes[2]] {
        node.registry().assert_image("team/big", "1", &image);
    }
    // The killed instance comes back and serves the same.
    cluster.nodes[1].restart();
    cluster.wait_up(3);
    cluster.nodes[1]
        .registry()
        .assert_image("team/big", "1", &image);
}

/// Two instances asked at once to create users whose names differ only
/// in case: one is created, the other refused (each instance alone would
/// refuse the second; together they must too).
#[test]
fn names_differing_only_in_case_are_refused_across_instances() {
    let (cluster, _api) = start(2);
    let (user, pw) = cluster.admin_credentials();
    let apis: Vec<Api> = cluster
        .nodes
        .iter()
        .map(|n| Api::at(&n.url(), user, pw))
        .collect();
    let body = |name: String| {
        serde_json::json!({"username": name, "password": "Race-pw-12345",
                           "email": format!("{name}@example.org"), "realname": name})
    };
    std::thread::scope(|s| {
        for i in 0..20 {
            let (a, b) = (&apis[0], &apis[1]);
            let first = s.spawn(move || a.post("/users", &body(format!("Race{i}"))).0);
            let second = s.spawn(move || b.post("/users", &body(format!("race{i}"))).0);
            let statuses = [first.join().unwrap(), second.join().unwrap()];
            let created = statuses.iter().filter(|s| **s == 201).count();
            assert_eq!(created, 1, "pair {i}: {statuses:?}");
        }
    });
}

/// A login checked on one instance while its password changes on another
/// is not kept in the first one's cache with the old password.
#[test]
fn an_old_password_stops_everywhere_when_it_changes() {
    let (cluster, api) = start(2);
    let id = api.create_user("erin", "Erin-pw-0");
    let b = &cluster.nodes[1];
    for round in 0..10 {
        let old = format!("Erin-pw-{round}");
        let new = format!("Erin-pw-{}", round + 1);
        let on_b = Registry::with_basic_auth(&b.url(), "erin", &old);
        std::thread::scope(|s| {
            let login = s.spawn(|| on_b.http().get(on_b.url("/v2/")).send().unwrap().status());
            std::thread::sleep(Duration::from_millis(round * 4));
            let (status, _, body) = api.put(
                &format!("/users/{id}/password"),
                &serde_json::json!({"new_password": new}),
            );
            assert_eq!(status, 200, "{body}");
            login.join().unwrap();
        });
        within(
            PROPAGATION,
            "the old password refused by the other instance",
            || on_b.http().get(on_b.url("/v2/")).send().unwrap().status() == 401,
        );
    }
}

/// `berth token-key rotate` beside a running cluster: every instance signs
/// with the new key at once (told through the database), tokens signed
/// before keep working everywhere, and each instance's JWKS lists both.
#[test]
fn the_signing_key_rotates_without_downtime() {
    use berth_tests::jwt;
    use berth_tests::tokens::{bearer, fetch_token, plain_client};
    let (cluster, _api) = start(2);
    let admin = cluster.admin_credentials();
    let scope = ["repository:team/app:pull"];
    let kid = |token: &str| jwt::decode(token).0["kid"].as_str().unwrap().to_owned();
    let before = fetch_token(&cluster.nodes[1].url(), Some(admin), &scope);
    let out = cluster.nodes[0]
        .command(&["token-key", "rotate"])
        .output()
        .unwrap();
    ok("berth token-key rotate", &out);
    for node in &cluster.nodes {
        within(PROPAGATION, "an instance signing with the new key", || {
            kid(&fetch_token(&node.url(), Some(admin), &scope)) != kid(&before)
        });
        let jwks: serde_json::Value = plain_client()
            .get(format!("{}/service/jwks", node.url()))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert_eq!(kids.len(), 2, "{jwks}");
        assert!(kids.contains(&kid(&before).as_str()), "{jwks}");
        // The old token still opens the door.
        let resp = plain_client()
            .get(format!("{}/v2/", node.url()))
            .header("authorization", bearer(&before))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "old token at {}", node.url());
    }
}

/// Replication across instances: a stop asked of another instance than
/// the one running the execution reaches it within seconds, and when that
/// instance is killed the others mark its execution failed.
#[test]
fn a_replication_is_stopped_from_another_instance_and_failed_when_its_instance_dies() {
    let mut cluster = Cluster::start(2);
    let (user, pw) = cluster.admin_credentials();
    let (user, pw) = (user.to_owned(), pw.to_owned());
    let upstream = berth_tests::upstream::DockerRegistry::start();
    let first = Api::as_user(&cluster.nodes[0], &user, &pw);
    let second = Api::as_user(&cluster.nodes[1], &user, &pw);
    let layer = berth_tests::content::Blob::random(8 << 20);
    let image = Image::with_layers(vec![berth_tests::Layer {
        diff_id: layer.digest.clone(),
        blob: layer,
    }]);
    Registry::with_basic_auth(&cluster.nodes[0].url(), &user, &pw).push_image(
        "library/slow",
        "1",
        &image,
    );
    let endpoint = first.create_registry("dr", "docker-registry", &upstream.url(), None);
    let policy = first.create_replication_policy(&serde_json::json!({
        "name": "slow", "dest_registry": {"id": endpoint},
        "filters": [{"type": "name", "value": "library/slow"}], "speed": 256
    }));
    let moving = |api: &Api, execution: i64| {
        let (_, _, tasks) = api.get(&format!("/replication/executions/{execution}/tasks"));
        tasks[0]["bytes"].as_i64().unwrap_or(0) > 0
    };

    let execution = first.start_replication(policy);
    within(Duration::from_secs(30), "bytes moving", || {
        moving(&second, execution)
    });
    let (status, _, answer) = second.put(
        &format!("/replication/executions/{execution}"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{answer}");
    let done = second.wait_replication(execution, Duration::from_secs(10));
    assert_eq!(done["status"], "Stopped", "{done}");

    let execution = first.start_replication(policy);
    within(Duration::from_secs(30), "bytes moving again", || {
        moving(&second, execution)
    });
    cluster.nodes[0].kill9();
    let done = second.wait_replication(execution, Duration::from_secs(40));
    assert_eq!(done["status"], "Failed", "{done}");
    assert!(
        done["status_text"].as_str().unwrap().contains("killed"),
        "{done}"
    );
}

/// Read-only mode turned on through one instance refuses a push through
/// the other as soon as the PUT answers, and turned off through the other
/// lets pushes in everywhere as soon as that answers.
#[test]
fn read_only_mode_holds_on_every_instance_when_its_put_answers() {
    let (cluster, _) = start(2);
    let (user, pw) = cluster.admin_credentials();
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let on_a = Api::at(&a.url(), user, pw);
    let on_b = Api::at(&b.url(), user, pw);
    let upload = |node: &berth_tests::Berth| {
        let r = Registry::with_basic_auth(&node.url(), user, pw);
        r.http()
            .post(r.url("/v2/team/app/blobs/uploads/"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..5 {
        let (status, _, body) =
            on_a.put("/configurations", &serde_json::json!({"read_only": true}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            upload(b),
            403,
            "a push through the other instance was let in"
        );
        assert_eq!(on_b.get("/systeminfo").2["read_only"], true);
        let (status, _, body) =
            on_b.put("/configurations", &serde_json::json!({"read_only": false}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            upload(a),
            202,
            "a push was still refused after read-only ended"
        );
    }
}

#[test]
fn a_mail_server_set_on_one_instance_sends_from_the_other_when_its_put_answers() {
    let smtp = berth_tests::smtp::Smtp::start(berth_tests::smtp::SmtpOptions::default());
    let (cluster, _) = start(2);
    let (user, pw) = cluster.admin_credentials();
    let on_a = Api::at(&cluster.nodes[0].url(), user, pw);
    let on_b = Api::at(&cluster.nodes[1].url(), user, pw);
    let ping = |api: &Api, to: &str| {
        api.post("/email/ping", &serde_json::json!({"email_to": to}))
            .0
    };
    assert_eq!(ping(&on_b, "ops@example.org"), 503);
    // Any login to the database server may listen to the announcements:
    // they carry the settings, never the passwords.
    let (heard, (status, _, body)) = std::thread::scope(|s| {
        let listener =
            s.spawn(|| cluster.nodes[0].sql("LISTEN berth_changes; SELECT pg_sleep(3); SELECT 1;"));
        std::thread::sleep(Duration::from_millis(1000));
        let put = on_a.put(
            "/configurations",
            &serde_json::json!({"email_host": "127.0.0.1", "email_port": smtp.port(),
                "email_from": "berth <registry@example.org>", "email_username": "mailer",
                "email_password": "announced-never-1"}),
        );
        (listener.join().unwrap(), put)
    });
    assert_eq!(status, 200, "{body}");
    assert!(
        heard.contains("email_host"),
        "no announcement heard: {heard}"
    );
    assert!(!heard.contains("announced-never-1"), "{heard}");
    // The server asks for no login: the other instance, which read the
    // password from the table, sends without one (aiosmtpd accepts AUTH
    // only when it is set up for it, so drop the login again).
    let (status, _, body) = on_a.put(
        "/configurations",
        &serde_json::json!({"email_username": "", "email_password": ""}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ping(&on_b, "b@example.org"),
        200,
        "the other instance has no mail server"
    );
    smtp.wait_for("the mail through b", 1, Duration::from_secs(30), |m| {
        m.rcpt_to.iter().any(|r| r == "b@example.org")
    });
    let (status, _, body) = on_b.put("/configurations", &serde_json::json!({"email_host": ""}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ping(&on_a, "a@example.org"),
        503,
        "mail still on at the other instance"
    );
}
