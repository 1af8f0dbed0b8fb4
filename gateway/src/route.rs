//! Parses a request path once into a typed route. Repository names contain
//! slashes, so the path is read from the right: the endpoint's fixed tail
//! first, everything before it is the name.

use berth_storage::oci::{Digest, Reference, RepoName};
use berth_storage::UploadId;

use crate::error::GatewayError;

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `/v2/`: API version check.
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, UploadRef),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

impl Route {
    /// The repository a route acts on, if any.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags(r)
            | Route::Manifest(r, _)
            | Route::Blob(r, _)
            | Route::UploadStart(r)
            | Route::Upload(r, _)
            | Route::Referrers(r, _) => Some(r),
        }
    }

    /// The same endpoint in another repository (the mirror's).
    pub fn with_repo(&self, repo: RepoName) -> Route {
        match self {
            Route::Base | Route::Catalog => self.clone(),
            Route::Tags(_) => Route::Tags(repo),
            Route::Manifest(_, r) => Route::Manifest(repo, r.clone()),
            Route::Blob(_, d) => Route::Blob(repo, d.clone()),
            Route::UploadStart(_) => Route::UploadStart(repo),
            Route::Upload(_, id) => Route::Upload(repo, id.clone()),
            Route::Referrers(_, d) => Route::Referrers(repo, d.clone()),
        }
    }
}

/// An upload id as the URL has it. berth's own are UUIDs; a fronted
/// upstream's may be anything (the client only echoes its `Location`), so
/// the id is parsed only when the upload is berth's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRef(String);

impl UploadRef {
    /// As one of berth's own uploads (unknown if it is not a UUID).
    pub fn local(&self) -> Result<UploadId, GatewayError> {
        Ok(self.0.parse::<UploadId>()?)
    }
}

/// Parses a `/v2/...` path (already known to start with `/v2`).
pub fn parse(raw_path: &str) -> Result<Route, GatewayError> {
    // An encoded slash would be one inside a path segment: decoded, it
    // makes a different repository name than the one forwarded upstream
    // (`front%2Fapp` is authorized as `front/app`). Names have no such
    // thing.
    if raw_path.to_ascii_lowercase().contains("%2f") {
        return Err(berth_storage::StorageError::NameInvalid(format!(
            "{raw_path}: an encoded `/` is not allowed in a repository name"
        ))
        .into());
    }
    let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let path = decoded.as_ref();
    let rest = path
        .strip_prefix("/v2")
        .ok_or_else(|| GatewayError::NotFound(path.to_owned()))?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    // `/v2x/...` is not under `/v2/` (and `rest[1..]` would split a
    // multi-byte character after `/v2`).
    let rest = rest
        .strip_prefix('/')
        .ok_or_else(|| GatewayError::NotFound(path.to_owned()))?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |upto: usize| -> Result<RepoName, GatewayError> {
        if upto == 0 {
            return Err(GatewayError::NotFound(path.to_owned()));
        }
        Ok(segs[..upto].join("/").parse::<RepoName>()?)
    };
    // Longest fixed tails first so `blobs/uploads/` is not read as a blob.
    if n >= 3 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        if segs[n - 1].is_empty() {
            return Ok(Route::UploadStart(name(n - 3)?));
        }
        return Ok(Route::Upload(
            name(n - 3)?,
            UploadRef(segs[n - 1].to_owned()),
        ));
    }
    if n >= 3 && segs[n - 2] == "blobs" && segs[n - 1] == "uploads" {
        return Ok(Route::UploadStart(name(n - 2)?));
    }
    if n >= 3 && segs[n - 2] == "tags" && segs[n - 1] == "list" {
        return Ok(Route::Tags(name(n - 2)?));
    }
    if n >= 3 && segs[n - 2] == "blobs" {
        return Ok(Route::Blob(name(n - 2)?, segs[n - 1].parse()?));
    }
    if n >= 3 && segs[n - 2] == "manifests" {
        return Ok(Route::Manifest(name(n - 2)?, segs[n - 1].parse()?));
    }
    if n >= 3 && segs[n - 2] == "referrers" {
        return Ok(Route::Referrers(name(n - 2)?, segs[n - 1].parse()?));
    }
    Err(GatewayError::NotFound(path.to_owned()))
}

/// The query string's pairs, percent-decoded.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_routes() {
        assert_eq!(parse("/v2/").unwrap(), Route::Base);
        assert_eq!(parse("/v2").unwrap(), Route::Base);
        assert_eq!(parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert!(
            matches!(parse("/v2/a/b/tags/list").unwrap(), Route::Tags(r) if r.as_str() == "a/b")
        );
        assert!(
            matches!(parse("/v2/a/b/c/d/e/f/g/h/manifests/latest").unwrap(), Route::Manifest(r, _) if r.as_str() == "a/b/c/d/e/f/g/h")
        );
        assert!(
            matches!(parse(&format!("/v2/x/blobs/{D}")).unwrap(), Route::Blob(r, _) if r.as_str() == "x")
        );
        assert!(
            matches!(parse("/v2/x/blobs/uploads/").unwrap(), Route::UploadStart(r) if r.as_str() == "x")
        );
        assert!(matches!(
            parse("/v2/x/blobs/uploads/6f1d3c7e-8d9a-4f4e-9c1b-2a3b4c5d6e7f").unwrap(),
            Route::Upload(..)
        ));
        assert!(matches!(
            parse(&format!("/v2/x/referrers/{D}")).unwrap(),
            Route::Referrers(..)
        ));
        // A repository may itself be called `blobs` or `manifests`.
        assert!(
            matches!(parse("/v2/blobs/manifests/manifests/v1").unwrap(), Route::Manifest(r, _) if r.as_str() == "blobs/manifests")
        );
        // Percent-encoded colon in a digest.
        assert!(matches!(
            parse(&format!("/v2/x/blobs/{}", D.replace(':', "%3A"))).unwrap(),
            Route::Blob(..)
        ));
    }

    #[test]
    fn upload_ids_are_parsed_only_for_local_uploads() {
        let Route::Upload(_, id) = parse("/v2/x/blobs/uploads/abc").unwrap() else {
            panic!("not an upload route");
        };
        assert!(id.local().is_err());
        let Route::Upload(_, id) =
            parse("/v2/x/blobs/uploads/6f1d3c7e-8d9a-4f4e-9c1b-2a3b4c5d6e7f").unwrap()
        else {
            panic!("not an upload route");
        };
        assert!(id.local().is_ok());
    }

    #[test]
    fn rejects_encoded_slashes_in_names() {
        for path in ["/v2/front%2Fapp/manifests/t", "/v2/front%2fapp/tags/list"] {
            assert!(
                matches!(
                    parse(path),
                    Err(GatewayError::Storage(
                        berth_storage::StorageError::NameInvalid(_)
                    ))
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn rejects_bad_paths() {
        assert!(matches!(
            parse("/v2/UPPER/tags/list"),
            Err(GatewayError::Storage(
                berth_storage::StorageError::NameInvalid(_)
            ))
        ));
        assert!(matches!(
            parse("/v2/x/blobs/sha256:zz"),
            Err(GatewayError::Storage(_))
        ));
        assert!(matches!(
            parse("/v2/x/whatever"),
            Err(GatewayError::NotFound(_))
        ));
        assert!(matches!(
            parse("/v2/manifests/latest"),
            Err(GatewayError::NotFound(_))
        ));
        // Found by fuzzing: a multi-byte character right after `/v2`
        // panicked (slicing inside it); nor is `/v2x_catalog` the catalog.
        for path in [
            "/v2%C3%A9/x/tags/list",
            "/v2\u{e9}/x/tags/list",
            "/v2x_catalog",
        ] {
            assert!(
                matches!(parse(path), Err(GatewayError::NotFound(_))),
                "{path}"
            );
        }
    }

    #[test]
    fn query() {
        let q = Query::parse(Some("tag=a&tag=b&digest=sha256%3Aabc&n=2"));
        assert_eq!(q.all("tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.get("digest"), Some("sha256:abc"));
        assert_eq!(q.get("last"), None);
    }
}
