//! The portal's two languages. Every string a page shows is a field of
//! [`Text`], so a string missing in one language does not compile.
//!
//! The language is `?lang=` (remembered in a cookie), else the cookie, else
//! the first of `Accept-Language` that berth speaks, else English.

use berth_policy::Role;

mod en;
mod zh_cn;

use en::EN;
use zh_cn::ZH_CN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
}

/// The cookie that remembers a choice made with `?lang=`.
pub const LANG_COOKIE: &str = "berth_lang";

impl Lang {
    /// `en` or `zh-CN`, as in `<html lang>` and `?lang=`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    pub fn parse(value: &str) -> Option<Lang> {
        let v = value.trim().to_ascii_lowercase();
        if v == "en" || v.starts_with("en-") {
            Some(Lang::En)
        } else if v == "zh" || v.starts_with("zh-") {
            // Traditional-script variants read Simplified better than English.
            Some(Lang::ZhCn)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header berth speaks, by
    /// quality.
    pub fn negotiate(accept: &str) -> Option<Lang> {
        let mut offers: Vec<(f32, usize, Lang)> = accept
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut bits = part.split(';');
                let lang = Lang::parse(bits.next()?)?;
                let q = bits
                    .find_map(|b| b.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q > 0.0).then_some((q, i, lang))
            })
            .collect();
        offers.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        offers.first().map(|o| o.2)
    }

    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::ZhCn => &ZH_CN,
        }
    }
}

/// Every string of the portal.
pub struct Text {
    pub skip_to_content: &'static str,
    pub nav_projects: &'static str,
    pub nav_admin: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub language: &'static str,
    pub login_title: &'static str,
    pub login_intro: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub login_failed: &'static str,
    pub robots_cannot_sign_in: &'static str,
    pub account_disabled: &'static str,
    /// `{}`: seconds to wait.
    pub too_many_attempts: &'static str,
    pub directory_unavailable: &'static str,
    pub sign_out_confirm: &'static str,
    pub runtime_settings: &'static str,
    pub read_only_mode: &'static str,
    pub read_only_hint: &'static str,
    pub who_creates_projects: &'static str,
    pub everyone: &'static str,
    pub admins_only: &'static str,
    pub token_minutes: &'static str,
    pub settings_saved: &'static str,
    pub robot_days: &'static str,
    pub authentication: &'static str,
    pub mail_server: &'static str,
    pub set_by_file: &'static str,
    pub unchanged: &'static str,
    pub forgot_password: &'static str,
    pub forgot_title: &'static str,
    pub forgot_intro: &'static str,
    pub send_reset_link: &'static str,
    pub reset_requested: &'static str,
    pub reset_unavailable: &'static str,
    pub reset_too_many: &'static str,
    pub email_invalid: &'static str,
    pub back_to_sign_in: &'static str,
    pub reset_title: &'static str,
    pub reset_link_invalid: &'static str,
    pub set_password: &'static str,
    pub passwords_differ: &'static str,
    pub password_reset_done: &'static str,
    pub projects: &'static str,
    pub search: &'static str,
    pub search_projects: &'static str,
    pub search_everything: &'static str,
    pub no_repositories_found: &'static str,
    pub account: &'static str,
    pub email: &'static str,
    pub full_name: &'static str,
    pub source: &'static str,
    pub change_password: &'static str,
    pub old_password: &'static str,
    pub new_password: &'static str,
    pub password_changed: &'static str,
    pub ldap_password_hint: &'static str,
    pub name: &'static str,
    pub access: &'static str,
    pub public: &'static str,
    pub private: &'static str,
    pub repositories: &'static str,
    pub quota: &'static str,
    pub created: &'static str,
    pub updated: &'static str,
    pub new_project: &'static str,
    pub project_name: &'static str,
    pub project_name_hint: &'static str,
    pub public_hint: &'static str,
    pub storage_limit: &'static str,
    pub storage_limit_hint: &'static str,
    pub create: &'static str,
    pub no_projects: &'static str,
    pub unlimited: &'static str,
    pub used_of: &'static str,
    pub summary: &'static str,
    pub members: &'static str,
    pub pull_prefix: &'static str,
    pub push_prefix: &'static str,
    pub your_role: &'static str,
    pub system_admin: &'static str,
    pub none: &'static str,
    pub delete_project: &'static str,
    pub delete_project_hint: &'static str,
    pub confirm_delete: &'static str,
    pub search_repositories: &'static str,
    pub no_repositories: &'static str,
    pub artifacts: &'static str,
    pub pulls: &'static str,
    pub member: &'static str,
    pub kind: &'static str,
    pub role: &'static str,
    pub user: &'static str,
    pub group: &'static str,
    pub add_member: &'static str,
    pub robots: &'static str,
    pub robot_created: &'static str,
    pub secret_once: &'static str,
    pub secret: &'static str,
    pub no_robots: &'static str,
    pub permissions: &'static str,
    pub expires: &'static str,
    pub description: &'static str,
    pub disabled: &'static str,
    pub new_robot: &'static str,
    pub duration_days: &'static str,
    pub add: &'static str,
    pub remove: &'static str,
    pub role_project_admin: &'static str,
    pub role_developer: &'static str,
    pub role_guest: &'static str,
    pub role_maintainer: &'static str,
    pub role_limited_guest: &'static str,
    pub tags: &'static str,
    pub digest: &'static str,
    pub size: &'static str,
    pub platforms: &'static str,
    pub push_time: &'static str,
    pub pull_time: &'static str,
    pub never: &'static str,
    pub untagged: &'static str,
    pub filter_tags: &'static str,
    pub page_size: &'static str,
    pub apply: &'static str,
    pub previous: &'static str,
    pub next: &'static str,
    pub page: &'static str,
    pub of: &'static str,
    pub total: &'static str,
    pub pull_command: &'static str,
    pub copy: &'static str,
    pub no_artifacts: &'static str,
    pub delete_repository: &'static str,
    pub media_type: &'static str,
    pub artifact_type: &'static str,
    pub layers: &'static str,
    pub created_by: &'static str,
    /// `{shown}` of `{total}`.
    pub layers_shown: &'static str,
    pub config: &'static str,
    pub referrers: &'static str,
    pub annotations: &'static str,
    pub index_manifests: &'static str,
    pub platform: &'static str,
    pub add_tag: &'static str,
    pub delete: &'static str,
    pub delete_artifact: &'static str,
    pub no_tags: &'static str,
    pub labels: &'static str,
    pub no_labels: &'static str,
    pub add_label: &'static str,
    pub global_label: &'static str,
    pub not_stored: &'static str,
    pub administration: &'static str,
    pub garbage_collection: &'static str,
    pub gc_intro: &'static str,
    pub run_gc: &'static str,
    pub dry_run: &'static str,
    pub delete_untagged: &'static str,
    pub history: &'static str,
    pub status: &'static str,
    pub trigger: &'static str,
    pub parameters: &'static str,
    pub deleted: &'static str,
    pub freed: &'static str,
    pub log: &'static str,
    pub add_group: &'static str,
    pub group_dn: &'static str,
    pub group_dn_hint: &'static str,
    // Administration
    pub users: &'static str,
    pub search_users: &'static str,
    pub no_users: &'static str,
    pub actions: &'static str,
    pub database: &'static str,
    pub make_admin: &'static str,
    pub revoke_admin: &'static str,
    pub disable: &'static str,
    pub enable: &'static str,
    pub reset_password: &'static str,
    pub repeat_password: &'static str,
    pub password_hint: &'static str,
    pub new_user: &'static str,
    pub user_created: &'static str,
    pub user_deleted: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub system_robots: &'static str,
    pub system_robots_intro: &'static str,
    pub all_projects: &'static str,
    pub these_projects: &'static str,
    pub robot_projects_hint: &'static str,
    pub registries: &'static str,
    pub registries_intro: &'static str,
    pub no_registries: &'static str,
    pub new_registry: &'static str,
    pub registry_url_hint: &'static str,
    pub access_key: &'static str,
    pub access_secret: &'static str,
    pub insecure: &'static str,
    pub insecure_hint: &'static str,
    pub test_connection: &'static str,
    pub connection_ok: &'static str,
    pub connection_failed: &'static str,
    pub quotas: &'static str,
    pub quotas_intro: &'static str,
    pub schedule: &'static str,
    pub next_run: &'static str,
    pub gc_cron_hint: &'static str,
    pub audit_log: &'static str,
    pub system: &'static str,
    pub health: &'static str,
    pub all_healthy: &'static str,
    pub not_all_healthy: &'static str,
    pub component: &'static str,
    pub details: &'static str,
    pub healthy: &'static str,
    pub unhealthy: &'static str,
    pub about: &'static str,
    pub version: &'static str,
    pub auth_mode: &'static str,
    pub configuration: &'static str,
    pub configuration_intro: &'static str,
    pub error_title: &'static str,
    pub go_back: &'static str,
    pub csrf_failed: &'static str,
    pub sign_in_to_see: &'static str,
    // Project logs, policies, configuration
    pub logs: &'static str,
    pub policies: &'static str,
    pub time: &'static str,
    pub operation: &'static str,
    pub resource_type: &'static str,
    pub resource: &'static str,
    pub result: &'static str,
    pub client_address: &'static str,
    pub succeeded: &'static str,
    pub failed: &'static str,
    pub no_audit_records: &'static str,
    pub from_date: &'static str,
    pub to_date: &'static str,
    pub proxy_cache: &'static str,
    pub proxy_cache_hint: &'static str,
    pub registry_endpoint: &'static str,
    pub provider: &'static str,
    pub endpoint_url: &'static str,
    pub proxy_mode: &'static str,
    pub proxy_cache_mode: &'static str,
    pub proxy_passthrough: &'static str,
    pub proxy_cache_fixed: &'static str,
    pub proxy_endpoint_gone: &'static str,
    pub not_proxy_cache: &'static str,
    pub tag_retention: &'static str,
    pub retention_intro: &'static str,
    pub retention_not_readable: &'static str,
    pub no_retention_rules: &'static str,
    pub confirm_delete_last_rule: &'static str,
    pub schedule_none: &'static str,
    pub cron_hint: &'static str,
    pub add_rule: &'static str,
    pub retain: &'static str,
    pub tpl_latest_pushed: &'static str,
    pub tpl_latest_pulled: &'static str,
    pub tpl_days_since_push: &'static str,
    pub tpl_days_since_pull: &'static str,
    pub tpl_always: &'static str,
    pub count_or_days: &'static str,
    pub matching: &'static str,
    pub excluding: &'static str,
    pub and: &'static str,
    pub pattern: &'static str,
    pub pattern_hint: &'static str,
    pub include_untagged: &'static str,
    pub run_now: &'static str,
    pub confirm_run_retention: &'static str,
    pub no_executions: &'static str,
    pub started: &'static str,
    pub ended: &'static str,
    pub yes: &'static str,
    pub no: &'static str,
    pub retained: &'static str,
    /// `{n}`: the count.
    pub rule_latest_pushed: &'static str,
    /// `{n}`: the count.
    pub rule_latest_pulled: &'static str,
    /// `{n}`: days.
    pub rule_days_since_push: &'static str,
    /// `{n}`: days.
    pub rule_days_since_pull: &'static str,
    pub rule_always: &'static str,
    /// Between the template and the repository selectors.
    pub rule_in_repositories: &'static str,
    /// Between the repository and the tag selectors.
    pub rule_with_tags: &'static str,
    pub rule_untagged_too: &'static str,
    pub rule_labelled: &'static str,
    pub rule_not_labelled: &'static str,
    pub tag_immutability: &'static str,
    pub immutable_intro: &'static str,
    pub immutable_not_readable: &'static str,
    pub no_immutable_rules: &'static str,
    pub enabled: &'static str,
    // Replication
    pub replication: &'static str,
    pub replication_intro: &'static str,
    pub no_replication_policies: &'static str,
    pub new_replication_policy: &'static str,
    pub repl_no_endpoints: &'static str,
    pub repl_mode: &'static str,
    pub repl_push: &'static str,
    pub repl_pull: &'static str,
    /// Before the endpoint's name in the list.
    pub repl_push_to: &'static str,
    /// Before the endpoint's name in the list.
    pub repl_pull_from: &'static str,
    pub destination_namespace: &'static str,
    pub repl_namespace_hint: &'static str,
    pub flattening: &'static str,
    pub flatten_all: &'static str,
    pub flatten_none: &'static str,
    /// `{n}`: how many leading name components are dropped.
    pub flatten_levels: &'static str,
    /// An empty destination namespace in the list.
    pub repl_same_names: &'static str,
    pub filters: &'static str,
    pub repl_name_filter: &'static str,
    pub repl_name_filter_hint: &'static str,
    pub repl_tag_filter: &'static str,
    pub repl_tag_excludes: &'static str,
    pub repl_resource: &'static str,
    pub resource_any: &'static str,
    pub resource_image: &'static str,
    pub resource_artifact: &'static str,
    /// A name filter in words: before its pattern.
    pub repl_filter_name_words: &'static str,
    /// A tag filter in words: before its pattern.
    pub repl_filter_tag_words: &'static str,
    /// A policy without filters.
    pub repl_everything: &'static str,
    pub trigger_manual: &'static str,
    pub trigger_scheduled: &'static str,
    pub trigger_event_based: &'static str,
    pub repl_cron_hint: &'static str,
    pub repl_event_hint: &'static str,
    pub override_existing: &'static str,
    pub replicate_deletion: &'static str,
    pub enable_policy: &'static str,
    pub speed_limit: &'static str,
    pub speed_hint: &'static str,
    pub copy_by_chunk: &'static str,
    pub single_active: &'static str,
    pub repl_policy_created: &'static str,
    pub repl_policy_deleted: &'static str,
    pub replicate_now: &'static str,
    pub repl_executions: &'static str,
    pub no_repl_executions: &'static str,
    pub policy: &'static str,
    pub stopped: &'static str,
    pub in_progress: &'static str,
    pub tasks: &'static str,
    pub replication_execution: &'static str,
    pub stop: &'static str,
    pub confirm_stop: &'static str,
    pub stop_requested: &'static str,
    pub refresh: &'static str,
    pub no_tasks: &'static str,
    pub repl_source: &'static str,
    pub repl_destination: &'static str,
    pub transferred: &'static str,
    pub task_log: &'static str,
    pub back_to_execution: &'static str,
    pub back_to_replication: &'static str,
}

impl Text {
    /// A project role's name.
    pub fn role(&self, role: Role) -> &'static str {
        match role {
            Role::ProjectAdmin => self.role_project_admin,
            Role::Developer => self.role_developer,
            Role::Guest => self.role_guest,
            Role::Maintainer => self.role_maintainer,
            Role::LimitedGuest => self.role_limited_guest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_quality_then_order() {
        assert_eq!(Lang::negotiate("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::ZhCn));
        assert_eq!(Lang::negotiate("fr, en;q=0.5, zh;q=0.7"), Some(Lang::ZhCn));
        assert_eq!(Lang::negotiate("en-GB, zh-CN"), Some(Lang::En));
        assert_eq!(Lang::negotiate("zh-TW"), Some(Lang::ZhCn));
        assert_eq!(Lang::negotiate("zh;q=0, fr"), None);
        assert_eq!(Lang::negotiate(""), None);
    }
}
