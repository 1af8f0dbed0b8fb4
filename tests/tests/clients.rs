//! Real clients that others wrote push to and pull from berth: skopeo,
//! podman, the oci-client crate and (where a Docker engine runs) docker.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use berth_tests::content::{
    image_index, random_layer, sha256_digest, to_json, OCI_INDEX, OCI_MANIFEST,
};
use berth_tests::{Api, Berth, Blob, Image};
use serde_json::{json, Value};

/// berth with the project these tests push to: pushes to a missing
/// project are refused.
fn start() -> Berth {
    let berth = Berth::start();
    Api::admin(&berth).create_projects(&["team"]);
    berth
}

/// Runs a command and asserts success, showing its output otherwise.
fn run(program: &str, args: &[&str]) -> Output {
    run_with(program, args, &[], None)
}

/// [`run`] with extra environment variables and optional standard input.
fn run_with(program: &str, args: &[&str], envs: &[(&str, &Path)], input: Option<&str>) -> Output {
    let envs: Vec<(&str, &std::ffi::OsStr)> =
        envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let out = berth_tests::tools::run(program, args, &envs, input);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes an OCI image layout holding `blobs` and one entry per
/// `(ref name, manifest)` in index.json.
fn write_oci_layout(dir: &Path, blobs: &[&Blob], refs: &[(&str, &Blob)]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for blob in blobs.iter().copied().chain(refs.iter().map(|(_, m)| *m)) {
        let hex = blob.digest.strip_prefix("sha256:").unwrap();
        std::fs::write(dir.join("blobs/sha256").join(hex), &blob.data).unwrap();
    }
    let manifests: Vec<Value> = refs
        .iter()
        .map(|(name, m)| {
            let mut d = m.descriptor();
            d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    std::fs::write(dir.join("index.json"), to_json(&index)).unwrap();
}

/// Every file of an OCI layout's blobs/sha256, by digest.
fn layout_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let data = std::fs::read(e.path()).unwrap();
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            assert_eq!(
                sha256_digest(&data),
                digest,
                "blob file {digest} is corrupt"
            );
            (digest, data)
        })
        .collect()
}

/// The manifest digest that an OCI layout's index.json names `name`.
fn layout_ref(dir: &Path, name: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {index}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn skopeo_copies_a_multi_layer_oci_image_in_and_out() {
    let berth = start();
    let registry = berth.registry();
    let creds = format!("admin:{}", berth.admin_password());
    let image = Image::with_layers((0..3).map(|i| random_layer(4, 10_000 * (i + 1))).collect());
    let src = berth.scratch_dir().join("src-layout");
    write_oci_layout(&src, &image.blobs(), &[("v1", &image.manifest)]);
    let dest = format!("docker://{}/team/app:v1", berth.host_port());

    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:v1", src.display()),
            &dest,
        ],
    );
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--raw",
            &dest,
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&raw.stdout),
        String::from_utf8_lossy(&image.manifest.data),
        "skopeo inspect --raw: the manifest comes back byte for byte"
    );
    let info: Value = serde_json::from_slice(
        &run(
            "skopeo",
            &["inspect", "--tls-verify=false", "--creds", &creds, &dest],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(info["Digest"], image.manifest.digest.as_str());
    let layers: Vec<&str> = info["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = image
        .layers
        .iter()
        .map(|l| l.blob.digest.as_str())
        .collect();
    assert_eq!(layers, expected, "layers seen by skopeo inspect");
    registry.assert_image("team/app", "v1", &image);

    let tags: Value = serde_json::from_slice(
        &run(
            "skopeo",
            &[
                "list-tags",
                "--tls-verify=false",
                "--creds",
                &creds,
                &format!("docker://{}/team/app", berth.host_port()),
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]));

    let back = berth.scratch_dir().join("back-layout");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &dest,
            &format!("oci:{}:v1", back.display()),
        ],
    );
    assert_eq!(
        layout_ref(&back, "v1"),
        image.manifest.digest,
        "manifest digest after the round trip"
    );
    assert_eq!(
        layout_blobs(&back),
        layout_blobs(&src),
        "every blob after the round trip"
    );
}

#[test]
fn skopeo_copies_a_multi_arch_index_and_deletes() {
    let berth = start();
    let registry = berth.registry();
    let creds = format!("admin:{}", berth.admin_password());
    let amd = Image::random(2);
    let arm = Image::random(1);
    let index = Blob::new(
        image_index(
            OCI_INDEX,
            &[&amd.manifest, &arm.manifest],
            &["amd64", "arm64"],
        ),
        OCI_INDEX,
    );
    let src = berth.scratch_dir().join("multi");
    let mut blobs = amd.blobs();
    blobs.extend(arm.blobs());
    blobs.push(&amd.manifest);
    blobs.push(&arm.manifest);
    write_oci_layout(&src, &blobs, &[("multi", &index)]);
    let dest = format!("docker://{}/team/multi:v1", berth.host_port());
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--all",
            "--dest-tls-verify=false",
            "--dest-creds",
            &creds,
            &format!("oci:{}:multi", src.display()),
            &dest,
        ],
    );
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--raw",
            &dest,
        ],
    );
    assert!(
        raw.stdout == index.data,
        "the index comes back byte for byte"
    );
    registry.assert_manifest("team/multi", "v1", &index);
    registry.assert_image("team/multi", &amd.manifest.digest, &amd);
    registry.assert_image("team/multi", &arm.manifest.digest, &arm);

    let back = berth.scratch_dir().join("multi-back");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--src-creds",
            &creds,
            &dest,
            &format!("oci:{}:multi", back.display()),
        ],
    );
    assert_eq!(layout_ref(&back, "multi"), index.digest);
    assert_eq!(layout_blobs(&back), layout_blobs(&src));

    run(
        "skopeo",
        &["delete", "--tls-verify=false", "--creds", &creds, &dest],
    );
    let resp = registry.get_manifest("team/multi", &index.digest);
    assert_eq!(resp.status(), 404, "index after skopeo delete");
}

#[test]
fn podman_pushes_and_pulls() {
    let berth = start();
    let registry = berth.registry();
    let creds = format!("admin:{}", berth.admin_password());
    let scratch = berth.scratch_dir().join("podman");
    for d in ["root", "runroot", "tmp"] {
        std::fs::create_dir_all(scratch.join(d)).unwrap();
    }
    let storage = [
        format!("--root={}", scratch.join("root").display()),
        format!("--runroot={}", scratch.join("runroot").display()),
        format!("--tmpdir={}", scratch.join("tmp").display()),
        "--storage-driver=vfs".to_string(),
        "--events-backend=file".to_string(),
    ];
    let podman = |args: &[&str]| {
        let mut all: Vec<&str> = storage.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run("podman", &all)
    };
    let tarball = berth_tests::tools::rootfs_tarball(&scratch);
    let name = format!("{}/team/podman", berth.host_port());
    let mut local = format!("{name}:src");
    podman(&["import", tarball.to_str().unwrap(), &local]);
    let id = stdout(&podman(&[
        "image", "inspect", "--format", "{{.Id}}", &local,
    ]));

    for (tag, format, media_type) in [
        ("oci", "oci", OCI_MANIFEST),
        (
            "v2s2",
            "v2s2",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let reference = format!("{name}:{tag}");
        podman(&["tag", &local, &reference]);
        let digest_file = scratch.join(format!("digest-{tag}"));
        podman(&[
            "push",
            "--tls-verify=false",
            "--creds",
            &creds,
            "--format",
            format,
            "--digestfile",
            digest_file.to_str().unwrap(),
            &reference,
        ]);
        let pushed = std::fs::read_to_string(&digest_file)
            .unwrap()
            .trim()
            .to_string();
        let resp = registry.get_manifest("team/podman", tag);
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            media_type,
            "media type of the {format} push"
        );
        let body = resp.bytes().unwrap();
        assert_eq!(
            sha256_digest(&body),
            pushed,
            "stored manifest vs podman's digest"
        );

        podman(&["rmi", "--all", "--force"]);
        let left = stdout(&podman(&["images", "--quiet"]));
        assert!(left.is_empty(), "images left after rmi: {left}");
        podman(&["pull", "--tls-verify=false", "--creds", &creds, &reference]);
        let pulled = stdout(&podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.Digest}}",
            &reference,
        ]));
        assert_eq!(
            pulled,
            format!("{id} {pushed}"),
            "image id and digest after pull ({format})"
        );
        local = reference;
    }
    podman(&["rmi", "--all", "--force"]);
}

#[test]
fn oci_client_crate_pushes_pulls_and_lists_tags() {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    use oci_client::manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE;
    use oci_client::secrets::RegistryAuth;
    use oci_client::{Client, Reference};

    let berth = start();
    let registry = berth.registry();
    let image = Image::random(3);
    let auth = RegistryAuth::Basic("admin".to_string(), berth.admin_password().to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for monolithic in [false, true] {
            let client = Client::new(ClientConfig {
                protocol: ClientProtocol::Http,
                use_monolithic_push: monolithic,
                ..Default::default()
            });
            let repo = if monolithic {
                "team/oci-mono"
            } else {
                "team/oci-chunked"
            };
            let layers: Vec<ImageLayer> = image
                .layers
                .iter()
                .map(|l| ImageLayer::oci_v1_gzip(l.blob.data.clone(), None))
                .collect();
            let config = Config::oci_v1(image.config.data.clone(), None);
            for tag in ["v1", "v2"] {
                let reference: Reference = format!("{}/{repo}:{tag}", berth.host_port())
                    .parse()
                    .unwrap();
                client
                    .push(&reference, &layers, config.clone(), &auth, None)
                    .await
                    .unwrap_or_else(|e| panic!("oci-client push {reference}: {e}"));
            }
            let reference: Reference = format!("{}/{repo}:v1", berth.host_port()).parse().unwrap();
            let pulled = client
                .pull(&reference, &auth, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE])
                .await
                .unwrap_or_else(|e| panic!("oci-client pull {reference}: {e}"));
            assert_eq!(pulled.layers.len(), 3);
            // Layers are pulled concurrently and come back in any order.
            let mut got: Vec<String> = pulled
                .layers
                .iter()
                .map(|l| sha256_digest(&l.data))
                .collect();
            let mut want: Vec<String> =
                image.layers.iter().map(|l| l.blob.digest.clone()).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "layer bytes ({repo})");
            assert!(
                pulled.config.data.as_ref() == image.config.data.as_slice(),
                "config bytes ({repo})"
            );
            let (raw, digest) = client
                .pull_manifest_raw(&reference, &auth, &[OCI_MANIFEST])
                .await
                .unwrap();
            assert_eq!(sha256_digest(&raw), digest);
            assert_eq!(pulled.digest.as_deref(), Some(digest.as_str()));

            let tags = client
                .list_tags(&reference, &auth, None, None)
                .await
                .unwrap();
            assert_eq!(tags.name, repo);
            assert_eq!(tags.tags, vec!["v1", "v2"]);
            let page = client
                .list_tags(&reference, &auth, Some(1), Some("v1"))
                .await
                .unwrap();
            assert_eq!(page.tags, vec!["v2"]);
            for blob in image.blobs() {
                registry.assert_blob(repo, blob);
            }
        }
    });
}

#[test]
fn docker_pushes_and_pulls() {
    if let Some(why) = berth_tests::tools::docker_unavailable() {
        println!("skipping docker test: {why}");
        return;
    }
    let berth = start();
    let (user, password) = berth.admin_credentials();
    berth_tests::tools::docker_push_and_pull(
        &berth.host_port(),
        user,
        password,
        berth.scratch_dir(),
        &berth.registry(),
    );
}
