//! `berth migrate --to-config NEW.toml`: an embedded installation (SQLite
//! and files) moves to PostgreSQL (a real server this test starts) and a
//! new data directory or an object store (Garage); a rerun picks up what
//! changed; the moved registry serves every image with identical digests,
//! its users and quotas; and a destination used since is never
//! overwritten.
#![allow(clippy::unwrap_used)]

use berth_tests::cluster::Cluster;
use berth_tests::content::{image_index, random_suffix, Blob, OCI_INDEX};
use berth_tests::registry::Registry;
use berth_tests::tools::{layout_digest, skopeo_copy, skopeo_login, text};
use berth_tests::{Api, Berth, Image};
use serde_json::Value;

fn migrate(from: &Berth, to_config: &std::path::Path) -> std::process::Output {
    from.command(&["migrate", "--to-config", to_config.to_str().unwrap()])
        .output()
        .unwrap()
}

/// A new installation to migrate into: an empty PostgreSQL database and
/// a config file naming it, with its data directory beside.
struct Destination {
    _dir: tempfile::TempDir,
    url: String,
    data: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Destination {
    fn new() -> Destination {
        let url = berth_tests::postgres::shared()
            .create_database(&format!("berth_migrate_{}", random_suffix()));
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("new.toml");
        std::fs::write(
            &config,
            format!("data_dir = \"data\"\n\n[database]\nurl = \"{url}\"\n"),
        )
        .unwrap();
        Destination {
            data: dir.path().join("data"),
            _dir: dir,
            url,
            config,
        }
    }
}

fn used_storage(api: &Api, project: &str) -> i64 {
    let (status, _, quotas) = api.get("/quotas");
    assert_eq!(status, 200, "{quotas}");
    quotas
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["ref"]["name"] == project)
        .unwrap_or_else(|| panic!("no quota of {project}: {quotas}"))["used"]["storage"]
        .as_i64()
        .unwrap()
}

#[test]
fn an_embedded_installation_moves_to_postgresql_and_reruns_pick_up_changes() {
    let mut old = Berth::start();
    let api = Api::admin(&old);
    api.create_projects(&["team"]);
    api.create_user("dave", "Dave-pw-12345");
    let one = Image::random(2);
    let two = Image::random(1);
    old.registry().push_image("team/one", "1", &one);
    old.registry().push_image("team/two", "latest", &two);

    let Destination {
        _dir: _dest,
        url,
        data: new_data,
        config,
    } = Destination::new();

    // A first run while the old registry serves: every blob (3 + 2).
    let out = migrate(&old, &config);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("5 blobs copied"), "{said}");
    assert!(said.contains("0 already there"), "{said}");

    // Changes after it: a new image, a deleted tag, a new password.
    let three = Image::random(1);
    old.registry().push_image("team/one", "2", &three);
    let registry = old.registry();
    let resp = registry
        .http()
        .delete(registry.url("/v2/team/two/manifests/latest"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    // An index of the two images of team/one: listings show it alone (its
    // platform images are not top-level), and must after the move too.
    let index = Blob::new(
        image_index(
            OCI_INDEX,
            &[&one.manifest, &three.manifest],
            &["amd64", "arm64"],
        ),
        OCI_INDEX,
    );
    old.registry().push_manifest("team/one", "multi", &index);
    let artifacts = "/projects/team/repositories/one/artifacts";
    let listed = |api: &Api| {
        let (status, headers, list) = api.get(artifacts);
        assert_eq!(status, 200, "{list}");
        let total = headers["x-total-count"].to_str().unwrap().to_owned();
        let digests: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["digest"].as_str().unwrap().to_owned())
            .collect();
        (total, digests)
    };
    let listed_before = listed(&api);
    assert_eq!(listed_before, ("1".to_owned(), vec![index.digest.clone()]));
    let used_before = used_storage(&api, "team");
    old.stop();

    // The last run copies only the new blobs and replaces the metadata.
    let out = migrate(&old, &config);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("2 blobs copied"), "{said}");
    assert!(said.contains("5 already there"), "{said}");
    assert!(!new_data.join("berth.db").exists());

    // The new installation serves everything, byte for byte.
    let new = Berth::start_in_with_env(&new_data, &[("BERTH_DATABASE__URL", url.as_str())]);
    let registry = new.registry();
    registry.assert_image("team/one", "1", &one);
    registry.assert_image("team/one", "2", &three);
    assert_eq!(registry.get_manifest("team/two", "latest").status(), 404);
    let dave = Registry::with_basic_auth(&new.url(), "dave", "Dave-pw-12345");
    assert_eq!(
        dave.http().get(dave.url("/v2/")).send().unwrap().status(),
        200
    );
    let new_api = Api::admin(&new);
    assert_eq!(used_storage(&new_api, "team"), used_before);
    assert_eq!(listed(&new_api), listed_before);
    let (_, _, repos) = new_api.get("/projects/team/repositories");
    let names: Vec<&str> = repos
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r: &Value| r["name"].as_str())
        .collect();
    assert!(names.contains(&"team/one"), "{repos}");

    // Once the new registry is used, a rerun would replace its data: refused.
    let four = Image::random(1);
    new.registry().push_image("team/new", "1", &four);
    let out = migrate(&old, &config);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("used after the last migration"),
        "{}",
        text(&out)
    );
    new.registry().assert_image("team/new", "1", &four);
}

/// A destination a fresh berth has started on is taken; one changed
/// after a migration (here an account added with `berth user add`, which
/// leaves no audit record) is never overwritten by a rerun.
#[test]
fn a_destination_changed_since_the_last_run_is_never_overwritten() {
    let old = Berth::start();
    Api::admin(&old).create_projects(&["team"]);
    old.registry()
        .push_image("team/one", "1", &Image::random(1));

    let Destination {
        _dir: _dest,
        url,
        data: new_data,
        config,
    } = Destination::new();
    // A berth started on the empty database first (admin, library).
    let mut fresh = Berth::start_in_with_env(&new_data, &[("BERTH_DATABASE__URL", url.as_str())]);
    fresh.stop();
    let out = migrate(&old, &config);
    assert!(out.status.success(), "{}", text(&out));

    let add = berth_tests::tools::run(
        berth_tests::server::berth_bin().to_str().unwrap(),
        &["user", "--config", config.to_str().unwrap(), "add", "carol"],
        &[],
        Some("Carol-pw-12345\n"),
    );
    assert!(add.status.success(), "{}", text(&add));
    let out = migrate(&old, &config);
    assert!(
        !out.status.success(),
        "a rerun replaced a changed destination"
    );
    assert!(
        text(&out).contains("used after the last migration"),
        "{}",
        text(&out)
    );
    let carol = berth_tests::postgres::shared().psql(
        url.rsplit('/').next().unwrap(),
        "SELECT username FROM users WHERE username = 'carol';",
    );
    assert_eq!(carol.trim(), "carol");
}

/// An embedded installation moves to PostgreSQL and an object store
/// (Garage): every blob is copied to its content address, a rerun finds
/// them there, and three instances of the new installation behind a load
/// balancer serve every image with its digests.
#[test]
fn an_embedded_installation_moves_to_postgresql_and_an_object_store() {
    let mut old = Berth::start();
    Api::admin(&old).create_projects(&["team"]);
    let one = Image::random(2);
    let two = Image::random(1);
    old.registry().push_image("team/one", "1", &one);
    old.registry().push_image("team/two", "1", &two);
    old.stop();

    let garage = berth_tests::garage::shared();
    let prefix = format!("migrated-{}/", random_suffix());
    let Destination {
        _dir: _dest,
        url,
        data: new_data,
        config,
    } = Destination::new();
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "\n[storage]\ndriver = \"s3\"\n\n[storage.s3]\nendpoint = \"{}\"\nregion = \"{}\"\n\
         bucket = \"{}\"\nprefix = \"{prefix}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
        garage.endpoint(),
        berth_tests::garage::REGION,
        berth_tests::garage::BUCKET,
        berth_tests::garage::ACCESS_KEY,
        berth_tests::garage::SECRET_KEY,
    ));
    std::fs::write(&config, toml).unwrap();

    let out = migrate(&old, &config);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("5 blobs copied"), "{said}");
    let stored = garage.list(&prefix);
    let at_addresses = stored
        .iter()
        .filter(|(key, _)| key.starts_with("blobs/sha256/"))
        .count();
    assert_eq!(at_addresses, 5, "{stored:?}");
    let out = migrate(&old, &config);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 blobs copied"),
        "{}",
        text(&out)
    );

    let mut env: Vec<(String, String)> = garage.env(&prefix);
    env.push(("BERTH_DATABASE__URL".into(), url.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new = Berth::start_in_with_env(&new_data, &env);
    assert!(!new_data.join("blobs/sha256").exists());

    // Three instances of the new installation behind haproxy: every image
    // pulls through the balancer whole, with the digests it had.
    let (second, third) = (new.join(), new.join());
    let cluster = Cluster::of(vec![new, second, third]);
    let (user, pw) = cluster.admin_credentials();
    let registry = cluster.registry_as(user, pw);
    let auth = cluster.scratch_dir().join("auth.json");
    let out = skopeo_login(&auth, &cluster.host_port(), user, pw);
    assert!(out.status.success(), "{}", text(&out));
    for (repo, image) in [("team/one", &one), ("team/two", &two)] {
        registry.assert_image(repo, "1", image);
        let layout = cluster.scratch_dir().join(repo.replace('/', "-"));
        let src = format!("docker://{}/{repo}:1", cluster.host_port());
        let out = skopeo_copy(&auth, &src, &format!("oci:{}:1", layout.display()));
        assert!(out.status.success(), "skopeo pull {repo}: {}", text(&out));
        assert_eq!(layout_digest(&layout, "1"), image.manifest.digest, "{repo}");
    }
}
