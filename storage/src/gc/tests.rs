//! The GC protocol against a real SQLite database and blob directory:
//! what goes, what stays, dry runs, the lock, crash recovery, and the
//! races with uploads, mounts and manifest pushes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::oci::RepoName;
use crate::oci::{manifest, Algorithm, Reference, Tag};
use crate::registry::Settings;

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

async fn registry(dir: &std::path::Path, grace: Duration) -> Registry {
    Registry::open(&Settings {
        blob_root: dir.join("blobs"),
        objects: None,
        database_url: format!("sqlite://{}/t.db", dir.display()),
        secret_key_file: dir.join("secret.key"),
        gc_grace: grace,
        upload_purge_age: Duration::from_secs(3600),
        role: crate::registry::Role::Server,
    })
    .await
    .unwrap()
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

/// Uploads `data` through the registry's upload path; its digest.
async fn upload(r: &Registry, repo: &RepoName, data: &[u8]) -> Result<Digest, StorageError> {
    let digest = Digest::compute(Algorithm::Sha256, data);
    let id = r.start_upload(repo).await?;
    let mut writer = r.append(repo, id, None).await?;
    writer.write(Bytes::copy_from_slice(data)).await;
    r.complete_upload(repo, id, writer, &digest).await?;
    Ok(digest)
}

fn descriptor(media_type: &str, d: &Digest, size: usize) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": d.to_string(), "size": size})
}

/// Pushes an image of a config and the given layers, tagged `tag` (or
/// untagged with `None`); its manifest digest.
async fn push_image(
    r: &Registry,
    repo: &RepoName,
    layers: &[&[u8]],
    tag: Option<&str>,
) -> Result<Digest, StorageError> {
    let config = format!("config-{}", uuid::Uuid::new_v4());
    let config_digest = upload(r, repo, config.as_bytes()).await?;
    let mut descs = Vec::new();
    for layer in layers {
        let d = upload(r, repo, layer).await?;
        descs.push(descriptor(LAYER, &d, layer.len()));
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
        "config": descriptor(CONFIG, &config_digest, config.len()),
        "layers": descs,
    }))
    .unwrap();
    let reference = match tag {
        Some(t) => Reference::Tag(t.parse::<Tag>().unwrap()),
        None => Reference::Digest(Digest::compute(Algorithm::Sha256, &body)),
    };
    let (digest, _) = r
        .put_manifest(repo, &reference, Some(manifest::OCI_MANIFEST), &body, &[])
        .await?;
    Ok(digest)
}

async fn gc(r: &Registry, options: GcOptions) -> GcReport {
    // With no grace window, what was touched in this very millisecond is
    // still not "older than" the cutoff: step past it.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let job = r.start_gc(GcKind::Manual, options).await.unwrap();
    r.run_gc(job).await.unwrap()
}

const REAL: GcOptions = GcOptions {
    dry_run: false,
    delete_untagged: false,
};
const DRY: GcOptions = GcOptions {
    dry_run: true,
    delete_untagged: false,
};

/// Every blob row has its file (the invariant GC must keep).
async fn assert_rows_have_files(r: &Registry) {
    let rows: Vec<String> = sqlx::query_scalar("SELECT digest FROM blobs")
        .fetch_all(r.meta.pool())
        .await
        .unwrap();
    for d in rows {
        let d: Digest = d.parse().unwrap();
        assert!(r.blobs.exists(&d), "row without file: {d}");
    }
}

#[tokio::test]
async fn deletes_what_nothing_references_and_reports_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let app = repo("team/app");
    let base = vec![1u8; 3000];
    let kept = push_image(&r, &app, &[&base, b"kept-layer"], Some("v1"))
        .await
        .unwrap();
    let gone = push_image(&r, &app, &[&base, b"gone-layer-xyz"], Some("v2"))
        .await
        .unwrap();
    let gone_manifest = r
        .get_manifest(&app, &Reference::Digest(gone.clone()))
        .await
        .unwrap();
    let parsed = manifest::parse(Some(manifest::OCI_MANIFEST), &gone_manifest.content).unwrap();
    r.delete_manifest(&app, &Reference::Digest(gone))
        .await
        .unwrap();

    let dry = gc(&r, DRY).await;
    assert_eq!(dry.blobs_deleted, 2, "{dry:?}");
    let real = gc(&r, REAL).await;
    assert_eq!(
        (real.blobs_deleted, real.bytes_freed),
        (dry.blobs_deleted, dry.bytes_freed)
    );
    let own_layer = Digest::compute(Algorithm::Sha256, b"gone-layer-xyz");
    assert!(!r.blobs.exists(&own_layer));
    assert!(matches!(
        r.stat_blob(&app, &own_layer).await,
        Err(StorageError::BlobUnknown(_))
    ));
    // The config (its size varies) and the 14-byte layer.
    let config = &parsed.blobs[0];
    assert!(!r.blobs.exists(config));
    assert!(real.bytes_freed > 14);
    // The kept image is whole, the shared base included.
    let m = r
        .get_manifest(&app, &Reference::Digest(kept))
        .await
        .unwrap();
    for d in manifest::parse(Some(manifest::OCI_MANIFEST), &m.content)
        .unwrap()
        .blobs
    {
        assert!(r.blobs.exists(&d));
        r.stat_blob(&app, &d).await.unwrap();
    }
    assert_rows_have_files(&r).await;
    // Nothing left to do.
    assert_eq!(gc(&r, REAL).await.blobs_deleted, 0);
}

#[tokio::test]
async fn the_grace_window_keeps_blobs_whose_manifest_has_not_come_yet() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::from_secs(3600)).await;
    let app = repo("team/app");
    let d = upload(&r, &app, b"layer pushed, manifest still to come")
        .await
        .unwrap();
    let report = gc(&r, REAL).await;
    assert_eq!(report.blobs_deleted, 0);
    assert!(r.blobs.exists(&d));
}

#[tokio::test]
async fn a_mount_or_manifest_after_gc_deleted_the_blob_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let (a, b) = (repo("team/a"), repo("team/b"));
    let d = upload(&r, &a, b"garbage soon").await.unwrap();
    assert_eq!(gc(&r, REAL).await.blobs_deleted, 1);
    assert!(!r.mount_blob(&b, &d, &a).await.unwrap());
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
        "config": descriptor(CONFIG, &d, 12), "layers": [],
    }))
    .unwrap();
    let put = r
        .put_manifest(&a, &Reference::Tag("x".parse().unwrap()), None, &body, &[])
        .await;
    assert!(
        matches!(put, Err(StorageError::ManifestBlobUnknown(_))),
        "{put:?}"
    );
    // Uploading it again brings it back.
    upload(&r, &a, b"garbage soon").await.unwrap();
    assert!(r.mount_blob(&b, &d, &a).await.unwrap());
    assert_rows_have_files(&r).await;
}

#[tokio::test]
async fn untagged_manifests_go_only_when_asked_and_indexes_keep_children() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let app = repo("team/app");
    let loose = push_image(&r, &app, &[b"loose"], None).await.unwrap();
    let child = push_image(&r, &app, &[b"child"], None).await.unwrap();
    let child_len = r
        .get_manifest(&app, &Reference::Digest(child.clone()))
        .await
        .unwrap()
        .content
        .len();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
        "manifests": [descriptor(manifest::OCI_MANIFEST, &child, child_len)],
    }))
    .unwrap();
    r.put_manifest(
        &app,
        &Reference::Tag("multi".parse().unwrap()),
        Some(manifest::OCI_INDEX),
        &index,
        &[],
    )
    .await
    .unwrap();
    // Manifests record whole seconds: wait until they are in the past.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(gc(&r, REAL).await.manifests_deleted, 0);
    let report = gc(
        &r,
        GcOptions {
            dry_run: false,
            delete_untagged: true,
        },
    )
    .await;
    assert_eq!(report.manifests_deleted, 1, "{report:?}");
    assert_eq!(
        report.blobs_deleted, 2,
        "the loose image's config and layer"
    );
    assert!(r
        .get_manifest(&app, &Reference::Digest(loose))
        .await
        .is_err());
    r.get_manifest(&app, &Reference::Digest(child))
        .await
        .unwrap();
    assert_rows_have_files(&r).await;
}

#[tokio::test]
async fn one_gc_at_a_time_and_a_dead_holder_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let job = r.start_gc(GcKind::Manual, REAL).await.unwrap();
    assert!(matches!(
        r.start_gc(GcKind::Manual, REAL).await,
        Err(StorageError::GcRunning { run_id }) if run_id == job.run_id
    ));
    r.run_gc(job).await.unwrap();
    let second = r.start_gc(GcKind::Schedule, REAL).await.unwrap();
    // As if its process had been killed: a holder whose pid is gone.
    sqlx::query("UPDATE gc_lock SET holder = $1")
        .bind(runs::holder_for_test(u32::MAX - 1))
        .execute(r.meta.pool())
        .await
        .unwrap();
    let third = r.start_gc(GcKind::Manual, REAL).await.unwrap();
    let old = r.gc_run(second.run_id).await.unwrap().unwrap();
    assert_eq!(old.status, GcStatus::Error);
    assert!(r.run_gc(second).await.is_err(), "the taken-over run stops");
    r.run_gc(third).await.unwrap();
    let (runs, total) = r.gc_runs(0, 10).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(runs[0].status, GcStatus::Success);
    assert_eq!(runs[0].kind, GcKind::Manual);
}

#[tokio::test]
async fn a_kill_mid_delete_is_repaired_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let app = repo("team/app");
    let (kept, deleted) = {
        let r = registry(dir.path(), Duration::ZERO).await;
        let kept = upload(&r, &app, b"row survived").await.unwrap();
        let deleted = upload(&r, &app, b"row deleted").await.unwrap();
        // The state a kill leaves: both files in the trash, one row gone.
        std::fs::create_dir_all(r.blobs.trash_dir()).unwrap();
        for d in [&kept, &deleted] {
            std::fs::rename(r.blobs.path(d), r.blobs.trash_path(d)).unwrap();
        }
        sqlx::query("DELETE FROM repo_blobs WHERE digest = $1")
            .bind(deleted.to_string())
            .execute(r.meta.pool())
            .await
            .unwrap();
        sqlx::query("DELETE FROM blobs WHERE digest = $1")
            .bind(deleted.to_string())
            .execute(r.meta.pool())
            .await
            .unwrap();
        (kept, deleted)
    };
    let r = registry(dir.path(), Duration::ZERO).await;
    assert!(r.blobs.exists(&kept));
    assert!(!r.blobs.exists(&deleted));
    assert!(std::fs::read_dir(r.blobs.trash_dir())
        .unwrap()
        .next()
        .is_none());
    assert_rows_have_files(&r).await;
}

#[tokio::test]
async fn orphan_files_and_abandoned_uploads_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let orphan = Digest::compute(Algorithm::Sha256, b"orphan");
    let path = r.blobs.path(&orphan);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"orphan").unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let dry = gc(&r, DRY).await;
    assert_eq!((dry.orphans_deleted, dry.bytes_freed), (1, 6));
    let real = gc(&r, REAL).await;
    assert_eq!((real.orphans_deleted, real.bytes_freed), (1, 6));
    assert!(!path.exists());

    let app = repo("team/app");
    let id = r.start_upload(&app).await.unwrap();
    let mut r = r;
    r.upload_purge_age = Duration::from_secs(3600);
    assert!(r.purge_uploads().await.unwrap().is_empty());
    r.upload_purge_age = Duration::ZERO;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(r.purge_uploads().await.unwrap(), [id.to_string()]);
    assert!(matches!(
        r.upload_len(&app, id).await,
        Err(StorageError::UploadUnknown)
    ));
    assert!(!r.sessions.path(id_uuid(id)).exists());
}

fn id_uuid(id: crate::registry::UploadId) -> uuid::Uuid {
    id.to_string().parse().unwrap()
}

/// Uploads, re-uploads, mounts and manifest pushes of the same few blobs
/// race with GC runs that have no grace window at all: whatever GC deletes,
/// no blob row is ever left without its file, and every manifest that was
/// accepted has all its blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_mounts_and_pushes_racing_gc_never_leave_a_row_without_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = Arc::new(registry(dir.path(), Duration::ZERO).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (r, stop) = (r.clone(), stop.clone());
        tokio::spawn(async move {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                gc(&r, REAL).await;
                runs += 1;
            }
            runs
        })
    };
    let mut pushers = Vec::new();
    for p in 0..4 {
        let r = r.clone();
        pushers.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            for i in 0..40 {
                let (from, to) = (repo(&format!("team/p{p}")), repo(&format!("team/q{p}")));
                let shared = format!("shared-{}", i % 3);
                let _ = upload(&r, &from, shared.as_bytes()).await;
                let d = Digest::compute(Algorithm::Sha256, shared.as_bytes());
                let _ = r.mount_blob(&to, &d, &from).await;
                let tag = format!("t{i}");
                match push_image(
                    &r,
                    &from,
                    &[shared.as_bytes(), format!("own-{p}-{i}").as_bytes()],
                    Some(&tag),
                )
                .await
                {
                    Ok(_) => accepted.push((from, tag)),
                    Err(StorageError::ManifestBlobUnknown(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            accepted
        }));
    }
    let mut accepted = Vec::new();
    for p in pushers {
        accepted.extend(p.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let runs = collector.await.unwrap();
    assert!(runs > 0);
    assert!(!accepted.is_empty());
    assert_rows_have_files(&r).await;
    for (repo, tag) in accepted {
        let m = r
            .get_manifest(&repo, &Reference::Tag(tag.parse().unwrap()))
            .await
            .unwrap();
        for d in manifest::parse(Some(manifest::OCI_MANIFEST), &m.content)
            .unwrap()
            .blobs
        {
            assert!(r.blobs.exists(&d), "{repo}:{tag} lost {d}");
        }
    }
}

#[tokio::test]
async fn a_blob_a_client_was_told_exists_stays_for_the_grace_window() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::from_secs(3600)).await;
    let app = repo("team/app");
    let asked = upload(&r, &app, b"HEAD says it exists").await.unwrap();
    let forgotten = upload(&r, &app, b"nobody asked").await.unwrap();
    // Both were last touched long ago.
    sqlx::query("UPDATE blobs SET touched_ms = 0")
        .execute(r.meta.pool())
        .await
        .unwrap();
    r.stat_blob(&app, &asked).await.unwrap();
    let report = gc(&r, REAL).await;
    assert_eq!(report.blobs_deleted, 1);
    assert!(r.blobs.exists(&asked));
    assert!(!r.blobs.exists(&forgotten));
}

#[tokio::test]
async fn a_read_puts_back_a_blob_a_killed_gc_left_in_the_trash() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let app = repo("team/app");
    let d = upload(&r, &app, b"moved, never deleted").await.unwrap();
    // A `berth gc` killed after the rename, before its commit.
    std::fs::create_dir_all(r.blobs.trash_dir()).unwrap();
    std::fs::rename(r.blobs.path(&d), r.blobs.trash_path(&d)).unwrap();
    let size = r.open_blob(&app, &d).await.unwrap().size;
    assert_eq!(size, 20);
    assert!(!r.blobs.trash_path(&d).exists());
}

/// A power loss may roll back commits made with `synchronous = NORMAL`;
/// a kill -9 cannot show it, so the order is checked here: the delete's
/// commit is FULL (fsynced before it returns) while the file is still in
/// the trash, and only then is the file unlinked.
#[tokio::test]
async fn a_blob_file_is_unlinked_only_after_its_delete_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let app = repo("team/app");
    let d = upload(&r, &app, b"unreferenced").await.unwrap();
    // Touched after the cutoff: kept, nothing committed or unlinked.
    let mut steps = Vec::new();
    let kept = sweep::delete_blob(&r.meta, &r.blobs, &d, 0, &mut |s| steps.push(s))
        .await
        .unwrap();
    assert!(kept.is_none() && steps.is_empty() && r.blobs.exists(&d));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let deleted = sweep::delete_blob(&r.meta, &r.blobs, &d, now_ms(), &mut |s| steps.push(s))
        .await
        .unwrap();
    assert!(deleted.is_some());
    assert_eq!(
        steps,
        [
            sweep::Step::Committed {
                synchronous: 2,
                in_trash: true
            },
            sweep::Step::Unlinked
        ]
    );
    assert!(!r.blobs.exists(&d) && !r.blobs.trash_path(&d).exists());
    // The pool's connections stay in the normal mode for everything else.
    for _ in 0..8 {
        let mode: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(r.meta.pool())
            .await
            .unwrap();
        assert_eq!(mode, 1, "a connection went back to the pool in FULL mode");
    }
}

/// buildx pushes platform manifests before their index: a manifest
/// pushed again (untagged, already stored from an old push) is young
/// again for the grace window.
#[tokio::test]
async fn a_manifest_pushed_again_is_young_again_for_gc() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::from_secs(3600)).await;
    let app = repo("team/app");
    let m = push_image(&r, &app, &[b"layer one"], None).await.unwrap();
    // Its first push was long ago.
    sqlx::query("UPDATE manifests SET created_at = 0")
        .execute(r.meta.pool())
        .await
        .unwrap();
    let stored = r
        .get_manifest(&app, &Reference::Digest(m.clone()))
        .await
        .unwrap();
    r.put_manifest(
        &app,
        &Reference::Digest(m.clone()),
        Some(manifest::OCI_MANIFEST),
        &stored.content,
        &[],
    )
    .await
    .unwrap();
    let options = GcOptions {
        dry_run: false,
        delete_untagged: true,
    };
    let report = gc(&r, options).await;
    assert_eq!(report.manifests_deleted, 0, "{report:?}");
    assert!(r.get_manifest(&app, &Reference::Digest(m)).await.is_ok());
}

/// The pull-through cache links a blob another repository stored; if GC
/// deleted the blob in between, the link must not bring back a row whose
/// file is gone.
#[tokio::test]
async fn a_cache_link_after_gc_does_not_recreate_a_row_without_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path(), Duration::ZERO).await;
    let d = upload(&r, &repo("team/app"), b"collected").await.unwrap();
    let size = r.blob_stored(&d).await.unwrap();
    assert_eq!(size, Some(9));
    // GC runs between the cache's check and its link.
    let report = gc(&r, REAL).await;
    assert_eq!(report.blobs_deleted, 1);
    let cached = repo("cache/app");
    assert!(!r.link_existing(&cached, &d).await.unwrap());
    assert_rows_have_files(&r).await;
    assert!(r.stat_blob(&cached, &d).await.is_err());
}
