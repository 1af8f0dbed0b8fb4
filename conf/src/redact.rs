//! [`Config::redacted`]: the effective settings, defaults and env overrides
//! included, as TOML a user can read and paste back, with secrets hidden.

use std::path::Path;
use std::time::Duration;

use toml::Value;

use crate::config::Config;
use crate::duration;
use crate::email::EmailSecurity;
use crate::secret::{Secret, REDACTED};

impl Config {
    /// The settings in force as TOML text, for `berth check-config`. Every
    /// secret reads `<redacted>`; unset optional keys appear as comments so
    /// the output also says what was left to its default behaviour.
    pub fn redacted(&self) -> String {
        let mut doc = Doc::default();
        doc.text("listen", &self.listen.to_string());
        doc.maybe(
            "external_url",
            self.external_url.as_ref().map(|url| url.as_str()),
            "derived from each request's Host header",
        );
        doc.path("data_dir", &self.data_dir);

        match &self.tls {
            Some(tls) => {
                doc.section("tls");
                doc.path("cert", &tls.cert);
                doc.path("key", &tls.key);
            }
            None => doc.unset_section("tls", "plain HTTP"),
        }

        doc.section("database");
        doc.secret("url", Some(&self.database.url), "");

        doc.section("storage");
        doc.text("driver", self.storage.driver.word());
        doc.path("root", &self.storage.root);
        doc.line(format!("redirect = {}", self.storage.redirect));
        if let Some(s3) = &self.storage.s3 {
            doc.section("storage.s3");
            doc.maybe("endpoint", s3.endpoint.as_deref(), "AWS S3");
            doc.text("region", &s3.region);
            doc.text("bucket", &s3.bucket);
            doc.text("prefix", &s3.prefix);
            doc.secret("access_key", s3.access_key.as_ref(), "from the environment");
            doc.secret("secret_key", s3.secret_key.as_ref(), "from the environment");
            doc.line(format!("path_style = {}", s3.path_style));
            doc.text("part_size", &s3.part_size.to_string());
        }

        doc.section("auth");
        doc.text("mode", self.auth.mode.word());
        doc.secret(
            "admin_password",
            self.auth.admin_password.as_ref(),
            "generated on first start",
        );
        doc.duration("token_ttl", self.auth.token_ttl);

        match &self.ldap {
            Some(ldap) => {
                doc.section("ldap");
                doc.text("url", &ldap.url);
                doc.maybe("search_dn", ldap.search_dn.as_deref(), "anonymous search");
                doc.secret("search_password", ldap.search_password.as_ref(), "");
                doc.text("base_dn", &ldap.base_dn);
                doc.maybe("filter", ldap.filter.as_deref(), "");
                doc.text("uid", &ldap.uid);
                doc.text("scope", ldap.scope.word());
                doc.duration("timeout", ldap.timeout);
                doc.line(format!("verify_cert = {}", ldap.verify_cert));
                doc.line(format!("start_tls = {}", ldap.start_tls));
                doc.duration("cache_ttl", ldap.cache_ttl);
                doc.maybe("group_base_dn", ldap.group_base_dn.as_deref(), "");
                doc.maybe("group_filter", ldap.group_filter.as_deref(), "");
                doc.maybe("group_gid", ldap.group_gid.as_deref(), "");
                doc.maybe("group_admin_dn", ldap.group_admin_dn.as_deref(), "");
                doc.maybe(
                    "group_membership_attribute",
                    ldap.group_membership_attribute.as_deref(),
                    "",
                );
            }
            None => doc.unset_section("ldap", "users are in the database"),
        }

        match &self.email {
            Some(email) => {
                doc.section("email");
                doc.text("server", &email.server);
                doc.line(format!("port = {}", email.port));
                doc.maybe("username", email.username.as_deref(), "no SMTP login");
                doc.secret("password", email.password.as_ref(), "");
                doc.text("from", &email.from);
                doc.line(format!("ssl = {}", email.security == EmailSecurity::Tls));
                doc.line(format!(
                    "starttls = {}",
                    email.security == EmailSecurity::StartTls
                ));
                doc.line(format!("insecure = {}", email.insecure));
            }
            None => doc.unset_section("email", "no mail is sent (no password resets by email)"),
        }

        doc.section("server");
        doc.line(format!("threads = {}", self.server.threads));
        doc.duration("grace_period", self.server.grace_period);
        doc.duration("upload_purge_age", self.server.upload_purge_age);
        let redirect = self.server.http_redirect.map(|addr| addr.to_string());
        doc.maybe(
            "http_redirect",
            redirect.as_deref(),
            "no plain-HTTP redirect listener",
        );
        let proxies: Vec<String> = self
            .server
            .trusted_proxies
            .iter()
            .map(|net| format!("{}/{}", net.addr, net.prefix))
            .collect();
        doc.maybe(
            "trusted_proxies",
            Some(proxies.join(", "))
                .filter(|p| !p.is_empty())
                .as_deref(),
            "forwarded client addresses are not trusted",
        );
        doc.duration("body_timeout", self.server.body_timeout);
        doc.text("body_min_rate", &self.server.body_min_rate.to_string());
        doc.line(format!(
            "max_uploads_per_user = {}",
            self.server.max_uploads_per_user
        ));
        let limits = &self.server.limits;
        doc.text("max_manifest_size", &limits.max_manifest_size.to_string());
        doc.text("max_header_size", &limits.max_header_size.to_string());
        doc.line(format!("rate_limit = {}", limits.rate_limit));
        doc.line(format!("rate_burst = {}", limits.rate_burst));

        doc.section("log");
        doc.text("format", self.log.format.word());
        doc.text("level", &self.log.level);

        match &self.metrics.listen {
            Some(addr) => {
                doc.section("metrics");
                doc.text("listen", &addr.to_string());
            }
            None => doc.unset_section("metrics", "/metrics is served on the main listener"),
        }
        doc.section("quota");
        doc.line(format!(
            "default_storage_limit = {}",
            self.quota
                .default_storage_limit
                .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX))
        ));

        doc.section("gc");
        doc.duration("grace_period", self.gc.grace_period);

        doc.section("secrets");
        doc.path("key_file", &self.secrets.key_file);

        doc.section("proxy");
        doc.maybe("mirror", self.proxy.mirror.as_deref(), "no mirror mode");
        doc.text("mirror_project", &self.proxy.mirror_project);
        let cache_max_size = self.proxy.cache_max_size.map(|size| size.to_string());
        doc.maybe(
            "cache_max_size",
            cache_max_size.as_deref(),
            "the pull-through cache is not capped",
        );
        doc.duration("cache_ttl", self.proxy.cache_ttl);
        doc.0
    }
}

#[derive(Default)]
struct Doc(String);

impl Doc {
    fn line(&mut self, line: String) {
        self.0.push_str(&line);
        self.0.push('\n');
    }

    fn section(&mut self, name: &str) {
        self.line(format!("\n[{name}]"));
    }

    fn unset_section(&mut self, name: &str, meaning: &str) {
        self.line(format!("\n# [{name}] is not set: {meaning}"));
    }

    /// Quoted and escaped by the toml crate, so any string reads back as is.
    fn text(&mut self, key: &str, value: &str) {
        self.line(format!("{key} = {}", Value::String(value.to_owned())));
    }

    fn path(&mut self, key: &str, value: &Path) {
        self.text(key, &value.to_string_lossy());
    }

    fn duration(&mut self, key: &str, value: Duration) {
        self.text(key, &duration::format(value));
    }

    fn maybe(&mut self, key: &str, value: Option<&str>, meaning: &str) {
        match (value, meaning) {
            (Some(value), _) => self.text(key, value),
            (None, "") => self.line(format!("# {key} is not set")),
            (None, meaning) => self.line(format!("# {key} is not set: {meaning}")),
        }
    }

    fn secret(&mut self, key: &str, value: Option<&Secret>, meaning: &str) {
        self.maybe(key, value.map(|_| REDACTED), meaning);
    }
}
