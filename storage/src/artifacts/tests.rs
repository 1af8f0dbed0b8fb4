//! Repositories, artifacts and tags against a real SQLite database.

use super::*;
use crate::oci::{manifest, Algorithm, Reference};

const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

async fn meta() -> (tempfile::TempDir, Meta) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    (dir, Meta::connect(&url).await.unwrap())
}

/// Links a blob of `len` bytes and returns its descriptor.
async fn blob(meta: &Meta, repo: &RepoName, seed: &str, len: u64) -> serde_json::Value {
    let d = Digest::compute(Algorithm::Sha256, seed.as_bytes());
    meta.link_blob(repo, &d, len).await.unwrap();
    serde_json::json!({"mediaType": CONFIG, "digest": d.to_string(), "size": len})
}

async fn push(meta: &Meta, repo: &RepoName, body: serde_json::Value, tags: &[&str]) -> Digest {
    let bytes = serde_json::to_vec(&body).unwrap();
    let parsed = manifest::parse(None, &bytes).unwrap();
    let digest = Digest::compute(Algorithm::Sha256, &bytes);
    let tags: Vec<Tag> = tags.iter().map(|t| t.parse().unwrap()).collect();
    meta.put_manifest(repo, &digest, &parsed, &bytes, &tags)
        .await
        .unwrap();
    digest
}

async fn image(meta: &Meta, repo: &RepoName, seed: &str, tags: &[&str]) -> (Digest, i64) {
    let config = blob(meta, repo, &format!("{seed}-config"), 100).await;
    let layer = blob(meta, repo, &format!("{seed}-layer"), 1000).await;
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
        "config": config, "layers": [layer],
    });
    let len = serde_json::to_vec(&body).unwrap().len() as i64;
    (push(meta, repo, body, tags).await, len + 1100)
}

#[tokio::test]
async fn artifacts_sizes_tags_and_index_deletion() {
    let (_dir, meta) = meta().await;
    let repo: RepoName = "team/app".parse().unwrap();
    let (amd, amd_size) = image(&meta, &repo, "amd", &[]).await;
    let (arm, arm_size) = image(&meta, &repo, "arm", &["arm-only"]).await;
    let index_body = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
        "manifests": [
            {"mediaType": manifest::OCI_MANIFEST, "digest": amd.to_string(), "size": 1,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": manifest::OCI_MANIFEST, "digest": arm.to_string(), "size": 1,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    });
    let index_len = serde_json::to_vec(&index_body).unwrap().len() as i64;
    let index = push(&meta, &repo, index_body, &["v1", "latest"]).await;
    let (single, single_size) = image(&meta, &repo, "single", &["solo"]).await;

    let repo_row = meta.repository(&repo).await.unwrap().unwrap();
    assert_eq!(repo_row.artifact_count, 2, "children are not top-level");
    assert_eq!(meta.repository_id(&repo).await.unwrap(), Some(repo_row.id));
    let elsewhere: RepoName = "team/none".parse().unwrap();
    assert_eq!(meta.repository_id(&elsewhere).await.unwrap(), None);
    let (rows, total) = meta
        .list_artifacts(
            repo_row.id,
            &TagFilter::Any.into(),
            ArtifactOrder::default(),
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(total, 2);
    let digests: BTreeSet<_> = rows.iter().map(|r| r.digest.clone()).collect();
    assert_eq!(digests, BTreeSet::from([index.clone(), single.clone()]));
    let idx = rows.iter().find(|r| r.digest == index).unwrap();
    assert!(idx.is_index());
    assert_eq!(idx.size, index_len + amd_size + arm_size);
    let names: Vec<&str> = idx.tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 2);
    assert_eq!(idx.children.len(), 2);
    assert_eq!(idx.children[1].digest, arm);
    assert!(idx.children[1].id.is_some());
    assert_eq!(
        idx.children[1]
            .platform
            .as_ref()
            .unwrap()
            .variant
            .as_deref(),
        Some("v8")
    );
    let one = rows.iter().find(|r| r.digest == single).unwrap();
    assert_eq!(one.size, single_size);
    assert_eq!(one.config_media_type.as_deref(), Some(CONFIG));

    let (only, n) = meta
        .list_artifacts(
            repo_row.id,
            &TagFilter::Exact("solo".into()).into(),
            ArtifactOrder::default(),
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!((n, only[0].digest.clone()), (1, single.clone()));
    let (_, n) = meta
        .list_artifacts(
            repo_row.id,
            &TagFilter::Untagged.into(),
            ArtifactOrder::default(),
            0,
            10,
        )
        .await
        .unwrap();
    assert_eq!(n, 0);

    // A child cannot go on its own.
    assert_eq!(
        meta.delete_artifact(repo_row.id, &amd).await.unwrap(),
        ArtifactDeletion::Referenced { by: index.clone() }
    );
    // The index takes its untagged child along; the tagged one stays.
    match meta.delete_artifact(repo_row.id, &index).await.unwrap() {
        ArtifactDeletion::Deleted { manifests, tags } => {
            assert_eq!(manifests, vec![index.clone(), amd.clone()]);
            assert_eq!(tags.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    let amd_ref = Reference::Digest(amd.clone());
    assert!(meta.get_manifest(&repo, &amd_ref).await.unwrap().is_none());
    assert!(meta.artifact(repo_row.id, &arm).await.unwrap().is_some());
    assert_eq!(
        meta.delete_artifact(repo_row.id, &index).await.unwrap(),
        ArtifactDeletion::NotFound
    );
}

#[tokio::test]
async fn tags_are_added_but_not_moved() {
    let (_dir, meta) = meta().await;
    let repo: RepoName = "team/app".parse().unwrap();
    let (a, _) = image(&meta, &repo, "a", &["v1"]).await;
    let (b, _) = image(&meta, &repo, "b", &[]).await;
    let id = meta.repository(&repo).await.unwrap().unwrap().id;
    let v1: Tag = "v1".parse().unwrap();
    let v2: Tag = "v2".parse().unwrap();
    assert_eq!(
        meta.add_tag(id, &b, &v1).await.unwrap(),
        TagAddition::Exists { on: a.clone() }
    );
    assert!(matches!(
        meta.add_tag(id, &b, &v2).await.unwrap(),
        TagAddition::Added { .. }
    ));
    assert_eq!(meta.tagged_digest(id, &v2).await.unwrap(), Some(b.clone()));
    let (tags, n) = meta
        .list_artifact_tags(id, &b, None, Some("v"), 0, 10)
        .await
        .unwrap();
    assert_eq!((n, tags[0].name.clone()), (1, v2.clone()));
    assert!(!meta.remove_artifact_tag(id, &a, &v2).await.unwrap());
    assert!(meta.remove_artifact_tag(id, &b, &v2).await.unwrap());
    let gone = Digest::compute(Algorithm::Sha256, b"gone");
    assert_eq!(
        meta.add_tag(id, &gone, &v2).await.unwrap(),
        TagAddition::NoArtifact
    );
}

#[tokio::test]
async fn repositories_are_listed_and_deleted_whole() {
    let (_dir, meta) = meta().await;
    meta.ensure_project("team", false).await.unwrap();
    for name in ["team/a", "team/b/c", "teamx/a"] {
        let repo: RepoName = name.parse().unwrap();
        image(&meta, &repo, name, &["v1"]).await;
    }
    meta.ping().await.unwrap();
    let (rows, total) = meta
        .list_repositories("team", &RepositoryFilter::default(), 0, 1)
        .await
        .unwrap();
    assert_eq!((total, rows[0].name.as_str()), (2, "team/a"));
    assert_eq!(rows[0].artifact_count, 1);
    assert!(rows[0].updated_at >= rows[0].created_at);
    let filter = RepositoryFilter {
        name_contains: Some("b/".into()),
        ..RepositoryFilter::default()
    };
    let (rows, _) = meta
        .list_repositories("team", &filter, 0, 10)
        .await
        .unwrap();
    assert_eq!(rows[0].name.as_str(), "team/b/c");
    let hits = meta.search_repositories("/a", "", 10).await.unwrap();
    assert_eq!(hits.len(), 1, "teamx has no project: {hits:?}");
    assert_eq!(hits[0].project_name, "team");

    let repo: RepoName = "team/a".parse().unwrap();
    assert!(meta.delete_repository(&repo).await.unwrap());
    assert!(!meta.delete_repository(&repo).await.unwrap());
    assert!(meta.repository(&repo).await.unwrap().is_none());
    let v1 = Reference::Tag("v1".parse().unwrap());
    assert!(meta.get_manifest(&repo, &v1).await.unwrap().is_none());
}

/// `manifests.parents`, which the listings read to tell top-level
/// artifacts, follows every write: an index pushed, a child deleted
/// through `/v2` (its index keeps listing it) and pushed again, the index
/// deleted.
#[tokio::test]
async fn top_level_follows_every_write() {
    let (_dir, meta) = meta().await;
    let repo: RepoName = "team/app".parse().unwrap();
    let (child, _) = image(&meta, &repo, "child", &[]).await;
    let (other, _) = image(&meta, &repo, "other", &["v1"]).await;
    let index = push(
        &meta,
        &repo,
        serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
            "manifests": [{"mediaType": manifest::OCI_MANIFEST, "digest": child.to_string(), "size": 1}],
        }),
        &["multi"],
    )
    .await;
    let id = meta.repository(&repo).await.unwrap().unwrap().id;
    let listed = |filter: TagFilter| {
        let meta = &meta;
        async move {
            let (rows, total) = meta
                .list_artifacts(id, &filter.clone().into(), ArtifactOrder::default(), 0, 100)
                .await
                .unwrap();
            let digests: BTreeSet<Digest> = rows.into_iter().map(|r| r.digest).collect();
            assert_eq!(digests.len() as i64, total, "{filter:?}");
            digests
        }
    };
    let both = BTreeSet::from([index.clone(), other.clone()]);
    assert_eq!(listed(TagFilter::Any).await, both);
    assert_eq!(listed(TagFilter::Tagged).await, both);
    assert!(listed(TagFilter::Untagged).await.is_empty());
    assert!(meta.delete_manifest(&repo, &child).await.unwrap());
    assert_eq!(listed(TagFilter::Any).await, both);
    let (again, _) = image(&meta, &repo, "child", &[]).await;
    assert_eq!(again, child);
    assert_eq!(listed(TagFilter::Any).await, both);
    assert_eq!(
        meta.repository(&repo)
            .await
            .unwrap()
            .unwrap()
            .artifact_count,
        2
    );
    let v2: Tag = "v2".parse().unwrap();
    meta.add_tag(id, &child, &v2).await.unwrap();
    assert_eq!(
        listed(TagFilter::Tagged).await,
        both,
        "a tagged child is no artifact"
    );
    meta.remove_artifact_tag(id, &child, &v2).await.unwrap();
    assert!(matches!(
        meta.delete_artifact(id, &index).await.unwrap(),
        ArtifactDeletion::Deleted { .. }
    ));
    assert_eq!(
        listed(TagFilter::Any).await,
        BTreeSet::from([other.clone()])
    );
    // A manifest pushed again after its index went is top-level again.
    let (again, _) = image(&meta, &repo, "child", &[]).await;
    assert_eq!(listed(TagFilter::Untagged).await, BTreeSet::from([again]));
    assert_eq!(
        listed(TagFilter::Contains("v".into())).await,
        BTreeSet::from([other])
    );
}

#[tokio::test]
async fn artifacts_are_listed_by_push_or_pull_time_either_way() {
    let (_dir, meta) = meta().await;
    let repo: RepoName = "team/sorted".parse().unwrap();
    let mut digests = Vec::new();
    // (seed, pushed, pulled): b was never pulled.
    let times: [(&str, i64, Option<i64>); 3] = [
        ("a", 100, Some(500)),
        ("b", 200, None),
        ("c", 300, Some(400)),
    ];
    for (seed, pushed, pulled) in times {
        let (digest, _) = image(&meta, &repo, seed, &[seed]).await;
        sqlx::query("UPDATE manifests SET created_at = $1, pulled_at = $2 WHERE digest = $3")
            .bind(pushed)
            .bind(pulled)
            .bind(digest.to_string())
            .execute(meta.pool())
            .await
            .unwrap();
        digests.push((seed, digest));
    }
    let id = meta.repository(&repo).await.unwrap().unwrap().id;
    let seed_of = |d: &Digest| digests.iter().find(|(_, x)| x == d).unwrap().0;
    for (order, expected) in [
        (ArtifactOrder::NewestPush, ["c", "b", "a"]),
        (ArtifactOrder::OldestPush, ["a", "b", "c"]),
        (ArtifactOrder::LatestPull, ["a", "c", "b"]),
        (ArtifactOrder::EarliestPull, ["b", "c", "a"]),
    ] {
        let (rows, total) = meta
            .list_artifacts(id, &TagFilter::Any.into(), order, 0, 10)
            .await
            .unwrap();
        assert_eq!(total, 3);
        let seeds: Vec<_> = rows.iter().map(|r| seed_of(&r.digest)).collect();
        assert_eq!(seeds, expected, "{order:?}");
        // Pages follow the same order.
        let (second, _) = meta
            .list_artifacts(id, &TagFilter::Any.into(), order, 1, 1)
            .await
            .unwrap();
        assert_eq!(seed_of(&second[0].digest), expected[1], "{order:?} page 2");
        // With a filter on tag names too.
        let (tagged, _) = meta
            .list_artifacts(id, &TagFilter::Tagged.into(), order, 0, 10)
            .await
            .unwrap();
        let seeds: Vec<_> = tagged.iter().map(|r| seed_of(&r.digest)).collect();
        assert_eq!(seeds, expected, "{order:?} tagged");
    }
    assert_eq!(
        ArtifactOrder::parse("-pull_time"),
        Some(ArtifactOrder::LatestPull)
    );
    assert_eq!(ArtifactOrder::parse("size"), None);
    for name in ArtifactOrder::names() {
        assert_eq!(ArtifactOrder::parse(name).unwrap().as_str(), name);
    }
}

#[tokio::test]
async fn labels_filter_listings_and_go_with_their_artifact() {
    use crate::labels::{LabelQuery, LabelRefused, LabelScope, LabelSpec, Labeling};
    let (_dir, meta) = meta().await;
    let team = meta
        .create_project("team", false, None, None)
        .await
        .unwrap()
        .unwrap();
    let other = meta
        .create_project("other", false, None, None)
        .await
        .unwrap()
        .unwrap();
    let app: RepoName = "team/app".parse().unwrap();
    let web: RepoName = "team/web".parse().unwrap();
    let elsewhere: RepoName = "other/app".parse().unwrap();
    let (a1, _) = image(&meta, &app, "a1", &["1"]).await;
    let (a2, _) = image(&meta, &app, "a2", &["2"]).await;
    let (w1, _) = image(&meta, &web, "w1", &["1"]).await;
    image(&meta, &elsewhere, "o1", &["1"]).await;
    let spec = |name: &str| LabelSpec::new(name, "", "").unwrap();
    let prod = meta
        .create_label(LabelScope::Global, &spec("prod"))
        .await
        .unwrap()
        .unwrap();
    let qa = meta
        .create_label(LabelScope::Project(team), &spec("qa"))
        .await
        .unwrap()
        .unwrap();
    let theirs = meta
        .create_label(LabelScope::Project(other), &spec("qa"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        meta.create_label(LabelScope::Project(team), &spec("qa"))
            .await
            .unwrap(),
        Err(LabelRefused::NameTaken)
    );
    assert_eq!(
        meta.create_label(LabelScope::Project(999), &spec("x"))
            .await
            .unwrap(),
        Err(LabelRefused::NotFound)
    );
    assert_eq!(
        meta.update_label(qa, &spec("prod")).await.unwrap(),
        Ok(()),
        "a project label may share a global label's name"
    );
    meta.update_label(qa, &spec("qa")).await.unwrap().unwrap();
    let add = |repo: &RepoName, d: &Digest, label: i64| {
        let (meta, repo, d) = (&meta, repo.clone(), d.clone());
        async move {
            meta.add_artifact_label(team, &repo, &d, label)
                .await
                .unwrap()
        }
    };
    assert_eq!(add(&app, &a1, prod).await, Labeling::Added);
    assert_eq!(add(&app, &a1, prod).await, Labeling::AlreadyThere);
    assert_eq!(add(&app, &a1, qa).await, Labeling::Added);
    assert_eq!(add(&app, &a2, qa).await, Labeling::Added);
    assert_eq!(add(&web, &w1, prod).await, Labeling::Added);
    assert_eq!(add(&app, &a1, theirs).await, Labeling::OtherProject);
    assert_eq!(add(&app, &a1, 9999).await, Labeling::NoLabel);
    assert_eq!(add(&app, &w1, prod).await, Labeling::NoArtifact);
    // An artifact carries at most PER_ARTIFACT labels.
    let crowded: RepoName = "team/crowded".parse().unwrap();
    let (c1, _) = image(&meta, &crowded, "c1", &["1"]).await;
    let mut last = 0;
    for n in 0..crate::labels::PER_ARTIFACT {
        last = meta
            .create_label(LabelScope::Project(team), &spec(&format!("l{n}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(add(&crowded, &c1, last).await, Labeling::Added);
    }
    assert_eq!(add(&crowded, &c1, prod).await, Labeling::Full);
    assert_eq!(add(&crowded, &c1, last).await, Labeling::AlreadyThere);

    let app_id = meta.repository_id(&app).await.unwrap().unwrap();
    let listed = |filter: ArtifactFilter| {
        let meta = &meta;
        async move {
            let (rows, total) = meta
                .list_artifacts(app_id, &filter, ArtifactOrder::default(), 0, 100)
                .await
                .unwrap();
            assert_eq!(rows.len() as i64, total, "{filter:?}");
            rows.into_iter().map(|r| r.digest).collect::<BTreeSet<_>>()
        }
    };
    let by = |tags: TagFilter, labels: &[i64]| ArtifactFilter {
        tags,
        labels: labels.to_vec(),
    };
    assert_eq!(
        listed(by(TagFilter::Any, &[prod])).await,
        BTreeSet::from([a1.clone()])
    );
    assert_eq!(
        listed(by(TagFilter::Any, &[qa])).await,
        BTreeSet::from([a1.clone(), a2.clone()])
    );
    assert_eq!(
        listed(by(TagFilter::Any, &[qa, prod])).await,
        BTreeSet::from([a1.clone()])
    );
    assert_eq!(
        listed(by(TagFilter::Exact("2".into()), &[qa])).await,
        BTreeSet::from([a2.clone()])
    );
    assert!(listed(by(TagFilter::Exact("2".into()), &[prod]))
        .await
        .is_empty());
    assert_eq!(
        listed(by(TagFilter::Contains("1".into()), &[qa])).await,
        BTreeSet::from([a1.clone()])
    );
    assert_eq!(
        listed(by(TagFilter::Tagged, &[qa, prod])).await,
        BTreeSet::from([a1.clone()])
    );
    assert!(listed(by(TagFilter::Untagged, &[qa])).await.is_empty());

    // The project's listing: both repositories, not the other project.
    let project = |filter: ArtifactFilter| {
        let meta = &meta;
        async move {
            let (rows, total) = meta
                .list_project_artifacts("team", &filter, ArtifactOrder::OldestPush, 0, 100)
                .await
                .unwrap();
            assert_eq!(rows.len() as i64, total, "{filter:?}");
            rows.into_iter().map(|r| r.digest).collect::<Vec<_>>()
        }
    };
    assert_eq!(project(TagFilter::Any.into()).await.len(), 4);
    assert_eq!(project(TagFilter::Exact("1".into()).into()).await.len(), 3);
    let labelled = project(by(TagFilter::Any, &[prod])).await;
    assert_eq!(
        BTreeSet::from_iter(labelled),
        BTreeSet::from([a1.clone(), w1.clone()])
    );
    let (page, total) = meta
        .list_project_artifacts(
            "team",
            &TagFilter::Any.into(),
            ArtifactOrder::default(),
            1,
            1,
        )
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 4));
    assert!(page[0].size > 0 && !page[0].tags.is_empty());

    let shown = meta.artifact_labels(app_id, &[&a1, &a2]).await.unwrap();
    let names = |d: &Digest| shown[d].iter().map(|l| l.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a1), ["prod", "qa"]);
    assert_eq!(names(&a2), ["qa"]);
    assert_eq!(
        meta.artifact_label_names(&app, &a1).await.unwrap(),
        ["prod", "qa"]
    );

    // The artifact's deletion takes its labels; pushed again, it has none.
    assert!(matches!(
        meta.delete_artifact(app_id, &a1).await.unwrap(),
        ArtifactDeletion::Deleted { .. }
    ));
    image(&meta, &app, "a1", &["1"]).await;
    assert!(meta
        .artifact_label_names(&app, &a1)
        .await
        .unwrap()
        .is_empty());
    // The label's deletion takes it off every artifact.
    assert!(meta.delete_label(qa).await.unwrap());
    assert!(!meta.delete_label(qa).await.unwrap());
    assert!(meta
        .artifact_labels(app_id, &[&a2])
        .await
        .unwrap()
        .is_empty());
    let query = LabelQuery {
        scope: LabelScope::Project(team),
        name_contains: None,
    };
    assert_eq!(
        meta.list_labels(&query, 0, 10).await.unwrap().1,
        crate::labels::PER_ARTIFACT
    );
    let globals = LabelQuery {
        scope: LabelScope::Global,
        name_contains: Some("ro".into()),
    };
    let (found, total) = meta.list_labels(&globals, 0, 10).await.unwrap();
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0].id, prod);
}
