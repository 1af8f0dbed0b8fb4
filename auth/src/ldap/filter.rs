//! The search filters: the configured part checked, the user's part escaped.
//!
//! The username and the user's DN are attacker-controlled as far as the
//! filter is concerned: `*)(uid=*` must match the literal string, not every
//! entry. They are escaped per RFC 4515 (`ldap3::ldap_escape`: `*`, `(`,
//! `)`, `\` and NUL become `\xx`). The configured parts are trusted but
//! checked, so a typo in `ldap.filter` is reported against that key instead
//! of surfacing as a server error on every login.

use ldap3::{ldap_escape, parse_filter};

/// Why a configured piece cannot be used: the key and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadSetting {
    pub(crate) key: &'static str,
    pub(crate) why: String,
}

impl BadSetting {
    fn new(key: &'static str, why: String) -> Self {
        BadSetting { key, why }
    }
}

/// The configured pieces, checked once when the directory is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filters {
    user: Option<String>,
    uid: String,
    group: Option<String>,
}

impl Filters {
    pub(crate) fn new(
        filter: Option<&str>,
        uid: &str,
        group_filter: Option<&str>,
    ) -> Result<Filters, BadSetting> {
        check_attribute("ldap.uid", uid)?;
        Ok(Filters {
            user: configured("ldap.filter", filter)?,
            uid: uid.to_owned(),
            group: configured("ldap.group_filter", group_filter)?,
        })
    }

    /// `(&<filter>(<uid>=<escaped username>))`, or just the equality when
    /// no filter is configured.
    pub(crate) fn user(&self, username: &str) -> String {
        let equality = format!("({}={})", self.uid, ldap_escape(username));
        and(self.user.as_deref(), equality)
    }

    /// The user search of `/ldap/users/search`: `username` exactly
    /// (escaped), or every user (`*`) when it is empty, as Harbor.
    pub(crate) fn users(&self, username: &str) -> String {
        let value = if username.is_empty() {
            "*".to_owned()
        } else {
            ldap_escape(username).into_owned()
        };
        and(self.user.as_deref(), format!("({}={value})", self.uid))
    }

    /// Groups named `name` (escaped) by `name_attribute` (checked), or
    /// every group when it is empty.
    pub(crate) fn groups_named(
        &self,
        name_attribute: &str,
        name: &str,
    ) -> Result<String, BadSetting> {
        check_attribute("ldap.group_gid", name_attribute)?;
        let value = if name.is_empty() {
            "*".to_owned()
        } else {
            ldap_escape(name).into_owned()
        };
        Ok(and(
            self.group.as_deref(),
            format!("({name_attribute}={value})"),
        ))
    }

    /// Any group (at a DN searched with base scope).
    pub(crate) fn any_group(&self) -> String {
        and(self.group.as_deref(), "(objectClass=*)".to_owned())
    }

    /// `(&<group_filter>(member=<escaped user DN>))`: the groups that list
    /// the user as a `member` (groupOfNames).
    pub(crate) fn group(&self, user_dn: &str) -> String {
        let equality = format!("(member={})", ldap_escape(user_dn));
        and(self.group.as_deref(), equality)
    }
}

fn and(configured: Option<&str>, equality: String) -> String {
    match configured {
        Some(filter) => format!("(&{filter}{equality})"),
        None => equality,
    }
}

/// Harbor accepts `objectClass=person` without parentheses and writes unset
/// filters as empty strings; both carry over. Anything else must parse on
/// its own, so it cannot unbalance the filter it is spliced into.
fn configured(key: &'static str, filter: Option<&str>) -> Result<Option<String>, BadSetting> {
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let filter = if filter.starts_with('(') {
        filter.to_owned()
    } else {
        format!("({filter})")
    };
    match parse_filter(&filter) {
        Ok(_) => Ok(Some(filter)),
        Err(()) => Err(BadSetting::new(
            key,
            format!("`{filter}` is not a valid LDAP search filter (RFC 4515)"),
        )),
    }
}

/// An attribute description (`uid`, `sAMAccountName`, `1.2.3`, `cn;lang-en`):
/// anything else would be spliced into the filter as structure.
fn check_attribute(key: &'static str, name: &str) -> Result<(), BadSetting> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';'));
    if valid {
        Ok(())
    } else {
        Err(BadSetting::new(
            key,
            format!("`{name}` is not an LDAP attribute name"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_filter(filter: Option<&str>, uid: &str, username: &str) -> Result<String, BadSetting> {
        Filters::new(filter, uid, None).map(|filters| filters.user(username))
    }

    fn group_filter(filter: Option<&str>, user_dn: &str) -> Result<String, BadSetting> {
        Filters::new(None, "uid", filter).map(|filters| filters.group(user_dn))
    }

    #[test]
    fn searches_escape_what_is_typed_and_list_all_when_empty() {
        let f = Filters::new(
            Some("objectClass=person"),
            "uid",
            Some("(objectClass=groupOfNames)"),
        )
        .unwrap();
        assert_eq!(
            f.users("a*)(uid=*"),
            "(&(objectClass=person)(uid=a\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(f.users(""), "(&(objectClass=person)(uid=*))");
        assert_eq!(
            f.groups_named("cn", "devs)(cn=*").unwrap(),
            "(&(objectClass=groupOfNames)(cn=devs\\29\\28cn=\\2a))"
        );
        assert_eq!(
            f.groups_named("cn", "").unwrap(),
            "(&(objectClass=groupOfNames)(cn=*))"
        );
        assert!(f.groups_named("cn)(x", "a").is_err());
        assert_eq!(
            f.any_group(),
            "(&(objectClass=groupOfNames)(objectClass=*))"
        );
    }

    #[test]
    fn user_filter_combines_the_configured_filter_and_the_uid() {
        assert_eq!(
            user_filter(Some("(objectClass=person)"), "uid", "alice"),
            Ok("(&(objectClass=person)(uid=alice))".to_owned())
        );
        assert_eq!(
            user_filter(None, "sAMAccountName", "bob"),
            Ok("(sAMAccountName=bob)".to_owned())
        );
        assert_eq!(
            user_filter(Some("  "), "uid", "bob"),
            Ok("(uid=bob)".to_owned())
        );
        // Harbor-style filter without the outer parentheses.
        assert_eq!(
            user_filter(Some("objectClass=inetOrgPerson"), "uid", "carol"),
            Ok("(&(objectClass=inetOrgPerson)(uid=carol))".to_owned())
        );
        assert_eq!(
            user_filter(Some("(|(objectClass=person)(objectClass=user))"), "cn", "x"),
            Ok("(&(|(objectClass=person)(objectClass=user))(cn=x))".to_owned())
        );
    }

    #[test]
    fn usernames_are_escaped_so_they_cannot_change_the_filter() {
        assert_eq!(
            user_filter(Some("(objectClass=person)"), "uid", "*)(uid=*"),
            Ok("(&(objectClass=person)(uid=\\2a\\29\\28uid=\\2a))".to_owned())
        );
        assert_eq!(
            user_filter(None, "uid", "a\\b\0c"),
            Ok("(uid=a\\5cb\\00c)".to_owned())
        );
        assert_eq!(user_filter(None, "uid", "*"), Ok("(uid=\\2a)".to_owned()));
        // Non-ASCII is legal in a filter and left alone.
        assert_eq!(
            user_filter(None, "uid", "jörg"),
            Ok("(uid=jörg)".to_owned())
        );
        // Whatever the username, the result is one well-formed filter.
        for name in [
            "*)(uid=*",
            ")(|(uid=*",
            "\\",
            "(",
            "a*b",
            "x)(objectClass=*))(|(uid=y",
        ] {
            let filter = user_filter(Some("(objectClass=person)"), "uid", name).expect("valid");
            assert!(parse_filter(&filter).is_ok(), "{filter}");
        }
    }

    #[test]
    fn group_filter_escapes_the_member_dn() {
        assert_eq!(
            group_filter(
                Some("(objectClass=groupOfNames)"),
                "uid=alice,ou=people,dc=example,dc=org"
            ),
            Ok(
                "(&(objectClass=groupOfNames)(member=uid=alice,ou=people,dc=example,dc=org))"
                    .to_owned()
            )
        );
        assert_eq!(
            group_filter(None, "cn=Smith\\, J (ext)*,dc=x"),
            Ok("(member=cn=Smith\\5c, J \\28ext\\29\\2a,dc=x)".to_owned())
        );
    }

    #[test]
    fn bad_configured_pieces_name_their_key() {
        let err = user_filter(Some("(objectClass=person"), "uid", "a").expect_err("unbalanced");
        assert_eq!(err.key, "ldap.filter");
        assert!(
            err.why.contains("not a valid LDAP search filter"),
            "{}",
            err.why
        );
        // A filter that closes early could otherwise splice in a second one.
        let err = user_filter(Some("(a=b))(|(c=d)"), "uid", "a").expect_err("two filters");
        assert_eq!(err.key, "ldap.filter");
        let err = group_filter(Some("((("), "cn=a").expect_err("garbage");
        assert_eq!(err.key, "ldap.group_filter");
        for uid in ["", "uid=x", "uid)(cn", "u id", "uid*"] {
            let err = user_filter(None, uid, "a").expect_err("bad attribute");
            assert_eq!(err.key, "ldap.uid", "{uid}");
        }
        assert!(user_filter(None, "cn;lang-en", "a").is_ok());
        assert!(user_filter(None, "0.9.2342.19200300.100.1.1", "a").is_ok());
    }
}
