//! The fuzz targets of berth's parsers of untrusted input (issue #17).
//!
//! Each target is one `pub fn <target>(data: &[u8])`: it hands the bytes to
//! the parser the way the server would and asserts what a correct parser
//! keeps: it never panics, what it accepts reads back the same when written
//! out and parsed again, and its answers lie within the bounds it was given.
//! A failed assertion is a finding, exactly like a panic inside the parser.
//!
//! `libfuzzer/` wraps each function in `fuzz_target!` for cargo-fuzz;
//! `tests/replay.rs` runs each over its committed corpus and over every
//! crash found so far (`artifacts/<target>/`), under `cargo test`.
//!
//! Inputs that carry two values put them on separate lines (the first line
//! is the first value), so that seeds stay readable text.

use std::borrow::Cow;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use berth_auth::keys::{KeyRing, KEY_FILE};
use berth_auth::{AuthError, TokenService};
use berth_gateway::api::page::{Page, Term, MAX_PAGE_SIZE, Q};
use berth_gateway::error::GatewayError;
use berth_gateway::route::{self, Query, Route};
use berth_policy::{Access, Action, Target};
use berth_storage::cron::Cron;
use berth_storage::oci::manifest::{self, ManifestKind, MAX_MANIFEST_REFERENCES};
use berth_storage::oci::{Algorithm, Digest, ProjectName, Reference, RepoName, Tag};
use berth_storage::selector::{doublestar, Decoration, LabelSelector, Selector};

/// A target's name and body.
pub type FuzzTarget = (&'static str, fn(&[u8]));

/// Every target, by name: the replay test and `run.sh` list the same.
pub const TARGETS: &[FuzzTarget] = &[
    ("oci_names", oci_names),
    ("v2_route", v2_route),
    ("manifest", manifest),
    ("ranges", ranges),
    ("token_request", token_request),
    ("jwt", jwt),
    ("harbor_q", harbor_q),
    ("selector", selector),
    ("cron", cron),
    ("config", config),
];

/// The bytes as text, the way a server decoding a header or body lossily
/// sees them (invalid UTF-8 still reaches the parser, as U+FFFD).
fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// `first\nrest` -> (`first`, `rest`); no newline: (`""`, everything).
fn two_lines(s: &str) -> (&str, &str) {
    s.split_once('\n').unwrap_or(("", s))
}

fn check_digest(d: &Digest) {
    let expected = match d.algorithm() {
        Algorithm::Sha256 => 64,
        Algorithm::Sha512 => 128,
    };
    assert_eq!(d.hex().len(), expected, "{d}: hex length of its algorithm");
    assert!(
        d.hex()
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{d}: lowercase hex"
    );
    assert_eq!(
        d.to_string().parse::<Digest>().ok().as_ref(),
        Some(d),
        "{d}: reads back"
    );
}

/// Repository names, project names, tags, references and digests
/// (`FromStr` of each), and computed digests.
pub fn oci_names(data: &[u8]) {
    let s = text(data);
    let s = s.as_ref();
    if let Ok(name) = s.parse::<RepoName>() {
        assert_eq!(name.as_str(), s);
        assert!(!s.is_empty() && s.len() <= 255, "{s:?}: 1 to 255 bytes");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)),
            "{s:?}: name characters"
        );
        assert_eq!(
            name.to_string().parse::<RepoName>().ok(),
            Some(name.clone())
        );
        let project = name.project();
        assert!(
            project.parse::<ProjectName>().is_ok(),
            "{s:?}: its project {project:?} is a project name"
        );
        match name.in_project() {
            Some(rest) => {
                assert_eq!(format!("{project}/{rest}"), s);
                assert!(rest.parse::<RepoName>().is_ok(), "{s:?}: {rest:?}");
            }
            None => assert_eq!(project, s),
        }
        let moved = name.under("mirror");
        assert_eq!(
            moved.is_ok(),
            s.len() + "mirror/".len() <= 255,
            "{s:?} under mirror"
        );
    }
    if let Ok(project) = s.parse::<ProjectName>() {
        assert_eq!(project.as_str(), s);
        assert!(!s.contains('/'));
        assert!(
            s.parse::<RepoName>().is_ok(),
            "{s:?}: a project name is a name"
        );
    }
    if let Ok(tag) = s.parse::<Tag>() {
        assert_eq!(tag.as_str(), s);
        assert!((1..=128).contains(&s.len()), "{s:?}: 1 to 128 bytes");
        assert!(!s.starts_with(['.', '-']) && !s.contains([':', '/']));
        assert_eq!(tag.to_string().parse::<Tag>().ok(), Some(tag));
    }
    let digest = s.parse::<Digest>();
    if let Ok(d) = &digest {
        check_digest(d);
        assert_eq!(d.to_string(), s);
    }
    match s.parse::<Reference>() {
        Ok(r) => {
            assert_eq!(r.to_string(), s);
            match &r {
                Reference::Tag(_) => assert!(!s.contains(':')),
                Reference::Digest(d) => {
                    check_digest(d);
                    assert_eq!(digest.ok().as_ref(), Some(d));
                }
            }
            assert_eq!(r.to_string().parse::<Reference>().ok(), Some(r));
        }
        Err(_) => {
            if s.contains(':') {
                assert!(digest.is_err(), "{s:?}: a digest, but not a reference");
            } else {
                assert!(
                    s.parse::<Tag>().is_err(),
                    "{s:?}: a tag, but not a reference"
                );
            }
        }
    }
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let d = Digest::compute(algorithm, data);
        assert_eq!(d.algorithm(), algorithm);
        check_digest(&d);
    }
}

/// The `/v2` path parser and the query-string parser, on
/// `<path>?<query>`.
pub fn v2_route(data: &[u8]) {
    let s = text(data);
    let (path, query) = match s.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (s.as_ref(), None),
    };
    if let Ok(route) = route::parse(path) {
        // Only paths under `/v2` are routes.
        let decoded = percent_decode(path);
        assert!(
            decoded == "/v2" || decoded.starts_with("/v2/"),
            "{path:?} ({decoded:?}) is not under /v2/"
        );
        // Written out again, the route reads back the same.
        let again = match &route {
            Route::Base => Some("/v2/".to_owned()),
            Route::Catalog => Some("/v2/_catalog".to_owned()),
            Route::Tags(r) => Some(format!("/v2/{r}/tags/list")),
            Route::Manifest(r, reference) => Some(format!("/v2/{r}/manifests/{reference}")),
            Route::Blob(r, d) => Some(format!("/v2/{r}/blobs/{d}")),
            Route::UploadStart(r) => Some(format!("/v2/{r}/blobs/uploads/")),
            // The upload id is opaque (only the gateway reads it).
            Route::Upload(..) => None,
            Route::Referrers(r, d) => Some(format!("/v2/{r}/referrers/{d}")),
        };
        if let Some(again) = again {
            assert_eq!(
                route::parse(&again).ok().as_ref(),
                Some(&route),
                "{path:?} -> {again:?}"
            );
        }
        if let Some(repo) = route.repo() {
            assert_eq!(
                repo.to_string().parse::<RepoName>().ok().as_ref(),
                Some(repo)
            );
            let mirror: RepoName = match "mirror/x".parse() {
                Ok(name) => name,
                Err(e) => panic!("a valid name: {e}"),
            };
            let moved = route.with_repo(mirror.clone());
            assert_eq!(moved.repo(), Some(&mirror));
            assert_eq!(moved.with_repo(repo.clone()), route);
        }
        if let Route::Upload(_, id) = &route {
            let _ = id.local();
        }
    }
    let q = Query::parse(query);
    let pairs: Vec<(&str, &str)> = q.pairs().collect();
    for (k, _) in &pairs {
        assert!(q.get(k).is_some());
        assert_eq!(q.get(k), q.all(k).next());
    }
    // Encoded again, the pairs read back the same.
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        encoded.append_pair(k, v);
    }
    let encoded = encoded.finish();
    let back = Query::parse(Some(&encoded));
    assert_eq!(back.pairs().collect::<Vec<_>>(), pairs, "{encoded:?}");
}

/// `%XX` decoded, as the route parser reads a path.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Manifest and index parsing and validation: `<Content-Type>\n<body>`
/// (an empty first line: no Content-Type).
pub fn manifest(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let content_type = text(content_type);
    let content_type = Some(content_type.as_ref()).filter(|ct| !ct.is_empty());
    let Ok(m) = manifest::parse(content_type, body) else {
        return;
    };
    assert_eq!(m.blobs.len(), m.blob_sizes.len());
    let index = matches!(
        m.kind,
        ManifestKind::OciIndex | ManifestKind::DockerManifestList
    );
    if index {
        assert!(m.blobs.is_empty(), "an index references no blobs");
    } else {
        assert!(m.manifests.is_empty(), "an image references no manifests");
        assert!(!m.blobs.is_empty(), "an image references its config");
    }
    assert!(m.blobs.len() + m.manifests.len() <= MAX_MANIFEST_REFERENCES);
    for list in [&m.blobs, &m.manifests] {
        let mut seen = std::collections::HashSet::new();
        for d in list {
            check_digest(d);
            assert!(seen.insert(d), "{d} listed twice");
        }
    }
    if let Some(subject) = &m.subject {
        check_digest(subject);
    }
    if let Some(annotations) = &m.annotations {
        assert!(
            matches!(
                serde_json::from_str::<serde_json::Value>(annotations),
                Ok(serde_json::Value::Object(_))
            ),
            "annotations re-serialised as an object: {annotations}"
        );
    }
    // Sent with the Content-Type of the kind it was read as, the same
    // manifest reads the same.
    match manifest::parse(Some(m.kind.media_type()), body) {
        Ok(again) => {
            assert_eq!(again.kind, m.kind);
            assert_eq!(again.blobs, m.blobs);
            assert_eq!(again.blob_sizes, m.blob_sizes);
            assert_eq!(again.manifests, m.manifests);
            assert_eq!(again.subject, m.subject);
        }
        Err(e) => panic!("read as {:?}, refused with its media type: {e}", m.kind),
    }
}

/// `Range` (blob GETs) and `Content-Range` (chunked uploads):
/// `<number>\n<header value>`, the number being the blob's size for the
/// Range and the request's Content-Length for the Content-Range.
pub fn ranges(data: &[u8]) {
    let s = text(data);
    let (number, value) = two_lines(&s);
    let size = number.trim().parse::<u64>().unwrap_or(number.len() as u64);
    match berth_gateway::v2::parse_range(value, size) {
        Ok(Some((start, end))) => {
            assert!(start <= end, "{value:?}: {start}-{end}");
            assert!(end < size, "{value:?}: {start}-{end} outside {size} bytes");
            assert!(!value.contains(','), "{value:?}: a single range");
        }
        Ok(None) => assert!(value.contains(','), "{value:?}: served whole"),
        Err(GatewayError::RangeNotSatisfiable { size: said }) => assert_eq!(said, size),
        Err(e) => panic!("{value:?}: unexpected error {e:?}"),
    }
    let content_length = Some(number).filter(|n| !n.is_empty());
    match berth_gateway::v2::parse_content_range(value, content_length) {
        Ok(start) => {
            if let Some(len) = content_length.and_then(|n| n.parse::<u64>().ok()) {
                // The chunk `start .. start + len` must exist.
                assert!(
                    len >= 1,
                    "{value:?}: an empty chunk with Content-Length {len}"
                );
                assert!(
                    start.checked_add(len - 1).is_some(),
                    "{value:?}: chunk past the end of u64 ({start} + {len})"
                );
            }
        }
        Err(GatewayError::ContentRangeInvalid(_)) => {}
        Err(e) => panic!("{value:?}: unexpected error {e:?}"),
    }
}

fn check_scope(scope: &str) {
    match berth_auth::scope::parse(scope) {
        Ok(Some((target, actions))) => {
            match &target {
                Target::Repository(name) => {
                    assert!(name.parse::<RepoName>().is_ok(), "{scope:?}: {name:?}");
                    assert!(scope.contains(name.as_str()));
                    assert!(actions
                        .iter()
                        .all(|a| matches!(a, Action::Pull | Action::Push | Action::Delete)));
                }
                Target::Catalog => assert!(actions.iter().all(|a| *a == Action::Catalog)),
            }
            // What a token's claim says reads back as the same grant.
            let access = Access { target, actions };
            let entry = berth_auth::scope::claim_entry(&access);
            assert_eq!(
                berth_auth::scope::from_claim_entry(&entry).as_ref(),
                Some(&access)
            );
        }
        Ok(None) => {}
        Err(AuthError::ScopeInvalid(s)) => assert_eq!(s, scope),
        Err(e) => panic!("{scope:?}: unexpected error {e:?}"),
    }
}

/// The token service's request parsing: `<Authorization value>\n<query or
/// form>`, read as `GET /service/token`'s query and Basic credentials and
/// as `POST /service/token`'s form, each scope through the scope parser.
pub fn token_request(data: &[u8]) {
    let (auth, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let auth = text(auth);
    if let Some((user, password)) = berth_gateway::auth::basic_credentials(&auth) {
        assert!(!user.contains(':'), "{auth:?}: user {user:?}");
        let again = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        assert_eq!(
            berth_gateway::auth::basic_credentials(&again),
            Some((user, password))
        );
    }
    let query_text = text(body);
    let query = Query::parse(Some(&query_text));
    let form = berth_gateway::token_endpoint::parse_form(body);
    let scopes = berth_gateway::token_endpoint::query_scopes(&query)
        .into_iter()
        .chain(berth_gateway::token_endpoint::form_scopes(&form));
    for scope in scopes {
        assert!(!scope.is_empty() && !scope.contains(' '), "{scope:?}");
        check_scope(scope);
    }
    let _ = (query.get("offline_token"), form.get("grant_type"));
}

const ISSUER: &str = "berth";
const AUDIENCE: &str = "berth-registry";

struct JwtFixture {
    service: TokenService,
    key: p256::ecdsa::SigningKey,
    kid: String,
}

/// One token service with a key made for this process (the key file is
/// read once and its directory removed).
fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        use p256::pkcs8::DecodePrivateKey;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ring = KeyRing::load_or_create(dir.path()).expect("a new signing key");
        let pem = std::fs::read_to_string(dir.path().join(KEY_FILE)).expect("the key file");
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem).expect("a PKCS#8 P-256 key");
        let kid = ring.current.public.kid.clone();
        JwtFixture {
            service: TokenService::new(ring, ISSUER, AUDIENCE, Duration::from_secs(300)),
            key,
            kid,
        }
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Bearer token verification, before and after the signature check. The
/// first byte picks how the rest becomes a token:
/// - `% 3 == 0`: the rest is the token;
/// - `% 3 == 1`: `<header JSON>\n<claims JSON>\n<signature bytes>`, base64url
///   encoded and joined (so the header's `alg` and `kid` are read);
/// - `% 3 == 2`: `<header JSON>\n<claims JSON>`, signed with the service's
///   own key (so the claims are read after a good signature).
///
/// In the header `$KID` is replaced by the service's key id; in the claims
/// `$NOW` by the current time and `$EXP` by five minutes later.
pub fn jwt(data: &[u8]) {
    let fixture = jwt_fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let rest = text(rest);
    if mode % 3 == 0 {
        let token = rest.as_ref();
        assert!(
            fixture.service.verify(token).is_err(),
            "{token:?}: verified without our signature"
        );
        assert!(fixture.service.verify_refresh(token).is_err());
        return;
    }
    let mut parts = rest.splitn(3, '\n');
    let header = parts.next().unwrap_or("").replace("$KID", &fixture.kid);
    let now = unix_now();
    let claims = parts
        .next()
        .unwrap_or("")
        .replace("$NOW", &now.to_string())
        .replace("$EXP", &(now + 300).to_string());
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(&claims)
    );
    let signature = if mode % 3 == 1 {
        parts.next().unwrap_or("").as_bytes().to_vec()
    } else {
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = fixture.key.sign(signing_input.as_bytes());
        sig.to_bytes().to_vec()
    };
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let access = fixture.service.verify(&token);
    let refresh = fixture.service.verify_refresh(&token);
    if mode % 3 == 1 {
        assert!(access.is_err(), "{token:?}: verified without our signature");
        assert!(
            refresh.is_err(),
            "{token:?}: verified without our signature"
        );
        return;
    }
    if access.is_err() && refresh.is_err() {
        return;
    }
    // Signed by our key and accepted: what was accepted is what the token
    // says.
    let header: serde_json::Value =
        serde_json::from_str(&header).expect("an accepted token's header is JSON");
    assert_eq!(header["alg"], "ES256", "{token:?}");
    assert_eq!(
        header["kid"].as_str(),
        Some(fixture.kid.as_str()),
        "{token:?}"
    );
    let claims: serde_json::Value =
        serde_json::from_str(&claims).expect("an accepted token's claims are JSON");
    assert_eq!(claims["iss"], ISSUER, "{claims}");
    let refresh_typ = claims.get("typ").and_then(|t| t.as_str()) == Some("refresh");
    if let Ok(v) = access {
        assert!(!refresh_typ, "a refresh token accepted as an access token");
        assert_eq!(Some(v.expires_at), claims["exp"].as_i64(), "{claims}");
        assert!(v.expires_at >= now - 20, "{claims}: expired");
        assert_eq!(v.subject, claims["sub"].as_str().unwrap_or(""), "{claims}");
    }
    if let Ok((subject, _)) = refresh {
        assert!(refresh_typ, "an access token accepted as a refresh token");
        assert!(!subject.is_empty());
        assert_eq!(claims["sub"].as_str(), Some(subject.as_str()), "{claims}");
    }
}

/// Harbor's list parameters: `page`, `page_size` and the `q` language, on
/// a query string.
pub fn harbor_q(data: &[u8]) {
    let s = text(data);
    let query = Query::parse(Some(&s));
    match Page::parse(&query) {
        Ok(page) => {
            assert!((1..=i64::from(i32::MAX)).contains(&page.page), "{page:?}");
            assert!((1..=MAX_PAGE_SIZE).contains(&page.size), "{page:?}");
            assert!(page.offset() >= 0 && page.limit() == page.size);
            let total = page.offset() + 10;
            let reply = page.reply("/api/v2.0/projects", &query, &[1, 2, 3], total);
            assert!(reply
                .headers
                .iter()
                .any(|(k, v)| *k == "X-Total-Count" && *v == total.to_string()));
        }
        Err(GatewayError::BadRequest(_)) => {}
        Err(e) => panic!("{s:?}: unexpected error {e:?}"),
    }
    let raw = query.get("q").unwrap_or("");
    match Q::parse(&query) {
        Ok(q) => {
            // Terms exactly when `q` says something.
            assert_eq!(q.reject_unknown(&[]).is_err(), !raw.is_empty(), "{raw:?}");
            for part in raw.split(',').filter(|_| !raw.is_empty()) {
                let (key, _) = part.split_once('=').expect("an accepted term has `=`");
                let term = q.get(key.trim());
                assert!(term.is_some(), "{raw:?}: term {key:?}");
                let (exact, contains) = q.name_filter(key.trim());
                match term {
                    Some(Term::Exact(v)) => assert_eq!(exact.as_ref(), Some(v)),
                    Some(Term::Fuzzy(v)) => assert_eq!(contains.as_ref(), Some(v)),
                    Some(Term::List(items)) => assert!(items.iter().all(|i| !i.is_empty())),
                    _ => {}
                }
            }
        }
        Err(GatewayError::BadRequest(_)) => {
            assert!(raw.split(',').any(|part| !part.contains('=')), "{raw:?}");
        }
        Err(e) => panic!("{raw:?}: unexpected error {e:?}"),
    }
}

/// `pattern` with every character a doublestar pattern treats specially
/// escaped: matches exactly `pattern`.
fn escape(literal: &str) -> String {
    let mut out = String::new();
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | ',') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Doublestar selectors: `<pattern>\n<name>\n<tag>\n<tag>...`.
pub fn selector(data: &[u8]) {
    let s = text(data);
    let mut lines = s.split('\n');
    let pattern = lines.next().unwrap_or("");
    let name = lines.next().unwrap_or("");
    let tags: Vec<&str> = lines.collect();
    let matched = doublestar(pattern, name);
    if name.len() <= 255 {
        assert!(doublestar("**", name), "`**` matches {name:?}");
        assert!(
            doublestar(&escape(name), name),
            "{name:?} escaped matches itself"
        );
        if !pattern.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            assert_eq!(
                matched,
                pattern == name,
                "literal {pattern:?} against {name:?}"
            );
        }
    } else {
        assert!(!matched, "names over 255 bytes match nothing");
    }
    for decoration in [
        Decoration::Matches,
        Decoration::Excludes,
        Decoration::RepoMatches,
        Decoration::RepoExcludes,
    ] {
        let excludes = matches!(decoration, Decoration::Excludes | Decoration::RepoExcludes);
        if let Ok(sel) = Selector::new("doublestar", decoration, pattern, !tags.is_empty()) {
            assert_eq!(sel.pattern, pattern);
            assert_eq!(sel.selects(name), matched != excludes);
            let any = tags.iter().any(|t| doublestar(pattern, t));
            let want = if tags.is_empty() {
                sel.untagged
            } else {
                any != excludes
            };
            assert_eq!(sel.selects_tags(tags.iter().copied()), want);
            let _ = sel.describe();
        }
    }
    assert!(Selector::new("doublestar", Decoration::Matches, "", false).is_err());
    for decoration in ["withLabels", "withoutLabels"] {
        if let Ok(sel) = LabelSelector::new(decoration, pattern) {
            assert!(!sel.labels.is_empty() && sel.labels.len() <= 32);
            assert!(
                sel.labels.windows(2).all(|w| w[0] < w[1]),
                "sorted, no repeats"
            );
            assert_eq!(sel.decoration(), decoration);
            assert_eq!(
                LabelSelector::new(sel.decoration(), &sel.pattern()).as_ref(),
                Ok(&sel)
            );
            assert_eq!(sel.selects(&sel.labels), sel.with);
            assert_eq!(sel.selects(&[]), !sel.with);
            let _ = sel.describe();
        }
    }
}

/// Cron expressions (GC, retention and replication schedules).
pub fn cron(data: &[u8]) {
    let s = text(data);
    let Ok(cron) = s.parse::<Cron>() else {
        return;
    };
    // 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600;
    if let Some(t) = cron.next_after(T0) {
        assert!(t > T0 && t <= T0 + 5 * 366 * 86_400 + 1, "{s:?}: {t}");
        assert!(
            cron.fires_at(t),
            "{s:?}: next_after {t}, but does not fire then"
        );
        if let Some(u) = cron.next_after(t) {
            assert!(u > t);
        }
    }
    let _ = cron.at_most_once_a_minute();
    if s.split_whitespace().count() == 5 {
        assert_eq!(
            format!("0 {s}").parse::<Cron>().as_ref(),
            Ok(&cron),
            "{s:?}: five fields are six with 0 seconds"
        );
    }
}

/// The config loader: `<berth.toml text>` or `<text>\0<NAME=value lines>`
/// for the environment.
pub fn config(data: &[u8]) {
    let s = text(data);
    let (file, env) = s.split_once('\0').unwrap_or((&s, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let path = Path::new("/etc/berth/berth.toml");
    let config = match berth_conf::load_text(path, file, &env) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // `berth check-config` prints TOML "a user can read and paste back":
    // it loads again to the same settings (the database URL, the one
    // secret a config cannot do without, put back; other secrets read
    // `<redacted>`).
    let shown = config.redacted();
    if let Err(e) = shown.parse::<toml::Table>() {
        panic!("redacted output is not TOML ({e}):\n{shown}");
    }
    let url = toml::Value::String(config.database.url.expose().to_owned()).to_string();
    let shown = shown.replace(
        "[database]\nurl = \"<redacted>\"",
        &format!("[database]\nurl = {url}"),
    );
    let again = match berth_conf::load_text(path, &shown, &[]) {
        Ok(again) => again,
        Err(e) => panic!("redacted output does not load again ({e}):\n{shown}"),
    };
    let redacted =
        |s: &Option<berth_conf::Secret>| s.as_ref().map(|_| berth_conf::Secret::new("<redacted>"));
    let mut expected = config.clone();
    expected.given = again.given.clone();
    expected.auth.admin_password = redacted(&expected.auth.admin_password);
    if let Some(ldap) = expected.ldap.as_mut() {
        ldap.search_password = redacted(&ldap.search_password);
    }
    if let Some(email) = expected.email.as_mut() {
        email.password = redacted(&email.password);
    }
    if let (Some(s3), Some(again_s3)) = (expected.storage.s3.as_mut(), again.storage.s3.as_ref()) {
        // Whichever of the keys the output hides.
        if again_s3.access_key.as_ref().map(|k| k.expose()) == Some("<redacted>") {
            s3.access_key = redacted(&s3.access_key);
        }
        if again_s3.secret_key.as_ref().map(|k| k.expose()) == Some("<redacted>") {
            s3.secret_key = redacted(&s3.secret_key);
        }
    }
    assert_eq!(
        again, expected,
        "redacted output loads to other settings:\n{shown}"
    );
}
