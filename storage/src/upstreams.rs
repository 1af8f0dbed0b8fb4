//! Registry endpoints (Harbor's `/registries`): upstream registries that
//! projects cache (pull-through) or front (passthrough), with the
//! credentials berth uses to log in there.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::error::StorageError;
use crate::meta::{now, Meta};
use crate::secrets::{seal_in, Keyring, Purpose};

/// How a project uses its registry endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyMode {
    /// Read-only pull-through cache: pulls are served from the local store,
    /// misses are fetched from upstream once and kept.
    Cache,
    /// Every request is forwarded to the upstream; nothing is stored here.
    Passthrough,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Cache => "cache",
            ProxyMode::Passthrough => "passthrough",
        }
    }

    pub fn parse(s: &str) -> Option<ProxyMode> {
        match s {
            "cache" | "proxy_cache" | "proxy-cache" => Some(ProxyMode::Cache),
            "passthrough" => Some(ProxyMode::Passthrough),
            _ => None,
        }
    }
}

/// A project's link to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProjectUpstream {
    pub registry_id: i64,
    pub mode: ProxyMode,
}

/// Credentials for an upstream: HTTP Basic, also used to ask the
/// upstream's token service for Bearer tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub access_secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key", &self.access_key)
            .field("access_secret", &"<redacted>")
            .finish()
    }
}

/// A registry endpoint as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: i64,
    pub name: String,
    /// Harbor's adapter type (`docker-registry`, `docker-hub`, `harbor`...).
    pub kind: String,
    /// Base URL without a trailing slash.
    pub url: String,
    pub description: String,
    /// Accept any TLS certificate from this upstream.
    pub insecure: bool,
    pub credential: Option<Credential>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The fields a create or update sets.
#[derive(Debug, Clone)]
pub struct EndpointSpec {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub description: String,
    pub insecure: bool,
    pub credential: Option<Credential>,
}

const COLUMNS: &str = "id, name, type, url, description, insecure, credential_type, access_key, \
     access_secret, created_at, updated_at";

fn endpoint_from_row(keyring: &Keyring, row: AnyRow) -> Result<Endpoint, StorageError> {
    let kind: Option<String> = row.try_get("credential_type")?;
    let url: String = row.try_get("url")?;
    let credential = match kind.as_deref() {
        Some("basic") => Some(Credential {
            access_key: row
                .try_get::<Option<String>, _>("access_key")?
                .unwrap_or_default(),
            access_secret: match row.try_get::<Option<String>, _>("access_secret")? {
                Some(s) if !s.is_empty() => keyring.open_or_warn(
                    Purpose::EndpointSecret { url: &url },
                    &s,
                    "a registry endpoint's stored secret",
                )?,
                _ => String::new(),
            },
        }),
        _ => None,
    };
    Ok(Endpoint {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("type")?,
        url,
        description: row.try_get("description")?,
        insecure: crate::meta::flag(&row, "insecure")?,
        credential,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Meta {
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, StorageError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM registries ORDER BY id"))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| endpoint_from_row(self.keyring(), r))
            .collect()
    }

    pub async fn endpoint(&self, id: i64) -> Result<Option<Endpoint>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM registries WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| endpoint_from_row(self.keyring(), r))
            .transpose()
    }

    pub async fn endpoint_by_name(&self, name: &str) -> Result<Option<Endpoint>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM registries WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| endpoint_from_row(self.keyring(), r))
            .transpose()
    }

    /// `None` when the name is taken.
    pub async fn create_endpoint(&self, spec: &EndpointSpec) -> Result<Option<i64>, StorageError> {
        let t = now();
        let mut tx = self.write().await?;
        let (kind, key, secret) = self.credential_columns(&mut tx, spec).await?;
        let id = sqlx::query_scalar(
            "INSERT INTO registries (name, type, url, description, insecure, credential_type, \
             access_key, access_secret, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(&spec.name)
        .bind(&spec.kind)
        .bind(&spec.url)
        .bind(&spec.description)
        .bind(i64::from(spec.insecure))
        .bind(kind)
        .bind(key)
        .bind(secret)
        .bind(t)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Replaces an endpoint's fields. False when it does not exist; a name
    /// taken by another endpoint is a unique-constraint error the caller
    /// checks first.
    pub async fn update_endpoint(
        &self,
        id: i64,
        spec: &EndpointSpec,
    ) -> Result<bool, StorageError> {
        let mut tx = self.write().await?;
        let (kind, key, secret) = self.credential_columns(&mut tx, spec).await?;
        let done = sqlx::query(
            "UPDATE registries SET name = $2, type = $3, url = $4, description = $5, insecure = $6, \
             credential_type = $7, access_key = $8, access_secret = $9, updated_at = $10 WHERE id = $1",
        )
        .bind(id)
        .bind(&spec.name)
        .bind(&spec.kind)
        .bind(&spec.url)
        .bind(&spec.description)
        .bind(i64::from(spec.insecure))
        .bind(kind)
        .bind(key)
        .bind(secret)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an endpoint unless a project or a replication policy uses
    /// it: `Err(names)` lists them, `Ok(false)` means no such endpoint.
    pub async fn delete_endpoint(
        &self,
        id: i64,
    ) -> Result<Result<bool, Vec<String>>, StorageError> {
        let mut tx = self.write().await?;
        let users: Vec<String> =
            sqlx::query_scalar("SELECT name FROM projects WHERE registry_id = $1 ORDER BY name")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let policies: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM replication_policies \
             WHERE src_registry_id = $1 OR dest_registry_id = $1 ORDER BY name",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let users: Vec<String> = users
            .into_iter()
            .map(|p| format!("project {p}"))
            .chain(
                policies
                    .into_iter()
                    .map(|p| format!("replication policy {p}")),
            )
            .collect();
        if !users.is_empty() {
            return Ok(Err(users));
        }
        let done = sqlx::query("DELETE FROM registries WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(done.rows_affected() > 0))
    }

    /// Links a project to an endpoint (cache or passthrough).
    pub async fn set_project_upstream(
        &self,
        project_id: i64,
        upstream: Option<ProjectUpstream>,
    ) -> Result<(), StorageError> {
        sqlx::query("UPDATE projects SET registry_id = $2, proxy_mode = $3 WHERE id = $1")
            .bind(project_id)
            .bind(upstream.map(|u| u.registry_id))
            .bind(upstream.map(|u| u.mode.as_str()))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Names of the proxy-cache projects (whose content may be evicted).
    pub async fn cache_projects(&self) -> Result<Vec<String>, StorageError> {
        let names = sqlx::query_scalar(
            "SELECT name FROM projects WHERE registry_id IS NOT NULL \
             AND COALESCE(proxy_mode, 'cache') <> 'passthrough' ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(names)
    }

    /// The endpoint and mode of a project, if it has one.
    pub async fn project_upstream(
        &self,
        project_id: i64,
    ) -> Result<Option<ProjectUpstream>, StorageError> {
        let row: Option<(Option<i64>, Option<String>)> =
            sqlx::query_as("SELECT registry_id, proxy_mode FROM projects WHERE id = $1")
                .bind(project_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(match row {
            Some((Some(registry_id), mode)) => Some(ProjectUpstream {
                registry_id,
                mode: mode
                    .as_deref()
                    .and_then(ProxyMode::parse)
                    .unwrap_or(ProxyMode::Cache),
            }),
            _ => None,
        })
    }
}

impl Meta {
    /// The credential columns of `spec`, its secret sealed for its URL
    /// inside the caller's write transaction.
    async fn credential_columns<'a>(
        &self,
        conn: &mut AnyConnection,
        spec: &'a EndpointSpec,
    ) -> Result<(Option<&'static str>, Option<&'a str>, Option<String>), StorageError> {
        Ok(match &spec.credential {
            Some(c) => (
                Some("basic"),
                Some(c.access_key.as_str()),
                Some(if c.access_secret.is_empty() {
                    String::new()
                } else {
                    let purpose = Purpose::EndpointSecret { url: &spec.url };
                    seal_in(self.keyring(), conn, purpose, &c.access_secret).await?
                }),
            ),
            None => (None, None, None),
        })
    }
}
