//! Distinguished names compared the way a directory compares them.
//!
//! The admin group is configured by hand (`group_admin_dn`) while group DNs
//! come back from the server in its own spelling, so a byte comparison would
//! make `cn=Registry-Admins, ou=groups,...` miss `cn=registry-admins,ou=groups,...`.
//! This is not a full RFC 4514 implementation with schema-aware matching
//! rules: attribute types and values are compared case-insensitively with
//! insignificant spaces removed, which is what caseIgnoreMatch (the rule of
//! `cn`, `ou`, `dc`, `uid`) does and what every group DN in practice uses.

/// Whether `a` and `b` name the same entry.
pub(crate) fn same_dn(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

/// Whether two attribute values are equal under caseIgnoreMatch: case and
/// insignificant spaces ignored.
pub(crate) fn same_value(a: &str, b: &str) -> bool {
    fold(a.as_bytes()) == fold(b.as_bytes())
}

/// A canonical spelling of `dn`: types and values lowercased, escapes
/// decoded, insignificant spaces dropped (around `,` `+` `=`, at the ends of
/// values, runs inside values), the AVAs of a multi-valued RDN sorted, and
/// special characters re-escaped one way (`\xx`). Two DNs that a directory
/// would call equal under caseIgnoreMatch normalize to the same string.
pub(crate) fn normalize(dn: &str) -> String {
    let rdns: Vec<String> = parse(dn)
        .into_iter()
        .map(|mut avas| {
            avas.sort();
            avas.iter()
                .map(|(kind, value)| format!("{kind}={}", escape(value)))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.join(",")
}

/// An RDN as (type, value) pairs, both already normalized.
type Rdn = Vec<(String, String)>;

/// Splits `dn` into RDNs and AVAs, honouring backslash escapes (`\,` and
/// `\2c`) and RFC 2253 quoted values. Malformed input does not fail: it is
/// normalized as well as it can be, so it compares equal only to itself.
fn parse(dn: &str) -> Vec<Rdn> {
    let bytes = dn.as_bytes();
    let mut rdns: Vec<Rdn> = Vec::new();
    let mut rdn: Rdn = Vec::new();
    let mut kind: Vec<u8> = Vec::new();
    let mut value: Vec<u8> = Vec::new();
    let mut in_value = false;
    let mut quoted = false;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        at += 1;
        let target = if in_value { &mut value } else { &mut kind };
        match byte {
            b'\\' => {
                // Checked digit by digit: `from_str_radix` would take the
                // `+b` of `a\+b` as a signed number.
                let hex = match bytes.get(at..at + 2) {
                    Some(&[high, low]) => hex_value(high)
                        .zip(hex_value(low))
                        .map(|(high, low)| high << 4 | low),
                    _ => None,
                };
                match (hex, bytes.get(at)) {
                    (Some(decoded), _) => {
                        target.push(decoded);
                        at += 2;
                    }
                    (None, Some(&next)) => {
                        target.push(next);
                        at += 1;
                    }
                    (None, None) => target.push(byte),
                }
            }
            b'"' if in_value => quoted = !quoted,
            _ if quoted => target.push(byte),
            b'=' if !in_value => in_value = true,
            b'+' | b',' | b';' => {
                rdn.push(finish(&mut kind, &mut value));
                in_value = false;
                if byte != b'+' {
                    rdns.push(std::mem::take(&mut rdn));
                }
            }
            _ => target.push(byte),
        }
    }
    if in_value || !kind.is_empty() || !rdn.is_empty() {
        rdn.push(finish(&mut kind, &mut value));
        rdns.push(rdn);
    }
    rdns
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

fn finish(kind: &mut Vec<u8>, value: &mut Vec<u8>) -> (String, String) {
    let kind = fold(&std::mem::take(kind));
    let value = fold(&std::mem::take(value));
    (kind, value)
}

/// Lowercase, trimmed, with each run of whitespace made one space.
fn fold(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Re-escapes what would otherwise be read as structure, always as `\xx`
/// so there is one spelling per value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '=' | '\\' | '"' | '<' | '>' | ';' | '#') {
            out.push_str(&format!("\\{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_spaces_do_not_matter() {
        assert!(same_dn(
            "cn=registry-admins,ou=groups,dc=example,dc=org",
            "CN=Registry-Admins, OU=Groups , DC=Example,DC=ORG",
        ));
        assert!(same_dn(
            "cn=Domain  Admins,dc=x",
            "cn = domain admins ,dc=x"
        ));
        assert!(same_dn("  cn=a,dc=x  ", "cn=a,dc=x"));
    }

    #[test]
    fn different_entries_differ() {
        assert!(!same_dn("cn=admins,dc=x", "cn=admins2,dc=x"));
        assert!(!same_dn("cn=admins,dc=x", "cn=admins,dc=y"));
        assert!(!same_dn("cn=admins,dc=x", "cn=admins,ou=g,dc=x"));
        assert!(!same_dn("cn=admins,dc=x", "ou=admins,dc=x"));
        assert!(!same_dn("cn=a b,dc=x", "cn=ab,dc=x"));
    }

    #[test]
    fn escaped_separators_stay_inside_the_value() {
        // `\,` and `\2c` are the same character; neither splits the RDN.
        assert!(same_dn("cn=Smith\\, John,dc=x", "cn=smith\\2c john,dc=x"));
        assert!(same_dn("cn=Smith\\, John,dc=x", "cn=\"Smith, John\",dc=x"));
        assert!(!same_dn("cn=Smith\\, John,dc=x", "cn=Smith,cn=John,dc=x"));
        assert_eq!(normalize("cn=a\\+b,dc=x"), "cn=a\\2bb,dc=x");
        assert_eq!(normalize("CN=A\\5C B,DC=X"), "cn=a\\5c b,dc=x");
    }

    #[test]
    fn multi_valued_rdns_compare_in_any_order() {
        assert!(same_dn("cn=a+uid=b,dc=x", "UID=b + CN=a,dc=x"));
        assert!(!same_dn("cn=a+uid=b,dc=x", "cn=a,uid=b,dc=x"));
    }

    #[test]
    fn semicolons_separate_like_commas() {
        assert!(same_dn("cn=a;dc=x", "cn=a,dc=x"));
    }

    #[test]
    fn utf8_values_and_escapes_fold() {
        assert!(same_dn("cn=Jörg,dc=x", "cn=JÖRG,dc=x"));
        // `\c3\b6` is the UTF-8 of `ö`.
        assert!(same_dn("cn=j\\c3\\b6rg,dc=x", "cn=Jörg,dc=x"));
    }

    #[test]
    fn values_compare_like_case_ignore_match() {
        assert!(same_value("alice", " ALICE "));
        assert!(same_value("Jörg  Müller", "jörg müller"));
        assert!(!same_value("alice", "alice2"));
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for odd in [
            "",
            ",",
            "=",
            "cn=",
            "\\",
            "cn=a\\",
            "cn=\"open",
            "noequals",
            "cn=a\\zz",
        ] {
            let _ = normalize(odd);
            assert!(same_dn(odd, odd));
        }
        assert!(!same_dn("", "cn=a"));
    }
}
