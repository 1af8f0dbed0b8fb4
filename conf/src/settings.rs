//! The merged settings (file, then environment over it) together with where
//! each value came from. Errors need the origin to name the file or the
//! variable; relative paths need it to know what they are relative to.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::{Table, Value};

use crate::duration;
use crate::env::Override;
use crate::error::{ConfError, Location};

pub(crate) struct Settings<'a> {
    table: Table,
    file: Option<&'a Path>,
    env: &'a [Override],
}

impl<'a> Settings<'a> {
    /// `table` must already have passed `schema::check` and had `env`
    /// applied: the getters below trust the types.
    pub(crate) fn new(table: Table, file: Option<&'a Path>, env: &'a [Override]) -> Self {
        Settings { table, file, env }
    }

    pub(crate) fn value(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = self.table.get(parts.next()?)?;
        parts.try_fold(first, |at, name| at.get(name))
    }

    pub(crate) fn text(&self, path: &str) -> Option<&str> {
        self.value(path).and_then(Value::as_str)
    }

    pub(crate) fn bool(&self, path: &str) -> Option<bool> {
        self.value(path).and_then(Value::as_bool)
    }

    pub(crate) fn integer(&self, path: &str) -> Option<i64> {
        self.value(path).and_then(Value::as_integer)
    }

    /// Whether any key of `section` is set, by the file or the environment.
    /// An empty `[section]` header counts as not set.
    pub(crate) fn has_section(&self, section: &str) -> bool {
        self.value(section)
            .and_then(Value::as_table)
            .is_some_and(|table| !table.is_empty())
    }

    /// A string that must not be empty when given.
    pub(crate) fn non_empty(&self, path: &str) -> Result<Option<&str>, ConfError> {
        match self.text(path) {
            Some("") => Err(self.invalid(path, "must not be empty".to_owned())),
            other => Ok(other),
        }
    }

    pub(crate) fn duration(&self, path: &str) -> Result<Option<Duration>, ConfError> {
        self.text(path)
            .map(|text| duration::parse(text).map_err(|message| self.invalid(path, message)))
            .transpose()
    }

    /// A path, resolved against the directory it is relative to (see
    /// [`Settings::base_dir`]).
    pub(crate) fn path(&self, path: &str) -> Result<Option<PathBuf>, ConfError> {
        Ok(self
            .non_empty(path)?
            .map(|text| self.resolve(path, Path::new(text))))
    }

    /// `relative` resolved as if it were the value of `key`; defaults use
    /// this too, so a default `./data` lands beside the config file.
    pub(crate) fn resolve(&self, key: &str, relative: &Path) -> PathBuf {
        match self.base_dir(key) {
            Some(base) if relative.is_relative() => join(base, relative),
            _ => relative.to_path_buf(),
        }
    }

    /// What a relative value of `key` is relative to, when that is not the
    /// working directory: the config file's directory, for values from the
    /// file and for defaults. A value from the environment was typed by
    /// someone in a shell, so it stays relative to where they stand.
    pub(crate) fn base_dir(&self, key: &str) -> Option<&Path> {
        if self.env_var(key).is_some() {
            return None;
        }
        self.file?
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
    }

    fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|o| o.key.path == key)
            .map(|o| o.var.as_str())
    }

    /// Where the user should look for (or add) `key`.
    pub(crate) fn at(&self, key: &str) -> Location {
        if let Some(var) = self.env_var(key) {
            return Location::Env {
                var: var.to_owned(),
            };
        }
        match self.file {
            Some(file) => Location::File {
                file: file.to_path_buf(),
                key: key.to_owned(),
            },
            None => Location::Key {
                key: key.to_owned(),
            },
        }
    }

    pub(crate) fn invalid(&self, key: &str, message: String) -> ConfError {
        ConfError::Invalid {
            at: self.at(key),
            message,
        }
    }

    pub(crate) fn missing(&self, key: &str, reason: &str) -> ConfError {
        ConfError::Missing {
            at: self.at(key),
            reason: reason.to_owned(),
        }
    }
}

/// `base` joined with `relative`, dropping `.` components so `./data` next
/// to `/etc/berth/berth.toml` reads `/etc/berth/data`. `..` is kept: folding
/// it lexically would be wrong across symlinks.
fn join(base: &Path, relative: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for component in relative.components() {
        if component != Component::CurDir {
            out.push(component);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn join_drops_current_dir_components_only() {
        assert_eq!(
            join(Path::new("/etc/berth"), Path::new("./data")),
            PathBuf::from("/etc/berth/data")
        );
        assert_eq!(
            join(Path::new("conf"), Path::new("../data")),
            PathBuf::from("conf/../data")
        );
    }

    #[test]
    fn file_values_resolve_against_the_file_and_env_values_do_not() {
        let table: Table = "data_dir = \"data\"\n".parse().expect("test TOML parses");
        let overrides =
            env::overrides(&pairs(&[("BERTH_STORAGE__ROOT", "blobs")])).expect("valid overrides");
        let mut table = table;
        env::apply(&mut table, &overrides);
        let file = Path::new("/etc/berth/berth.toml");
        let settings = Settings::new(table, Some(file), &overrides);
        assert_eq!(
            settings.path("data_dir").expect("valid"),
            Some(PathBuf::from("/etc/berth/data"))
        );
        assert_eq!(
            settings.path("storage.root").expect("valid"),
            Some(PathBuf::from("blobs"))
        );
        assert_eq!(
            settings.at("storage.root"),
            Location::Env {
                var: "BERTH_STORAGE__ROOT".to_owned()
            }
        );
        assert_eq!(
            settings.at("data_dir").to_string(),
            "/etc/berth/berth.toml: data_dir"
        );
    }

    #[test]
    fn a_bare_file_name_leaves_paths_relative_to_the_working_directory() {
        let settings = Settings::new(Table::new(), Some(Path::new("berth.toml")), &[]);
        assert_eq!(
            settings.resolve("data_dir", Path::new("./data")),
            PathBuf::from("./data")
        );
    }

    #[test]
    fn without_a_file_locations_are_bare_keys() {
        let settings = Settings::new(Table::new(), None, &[]);
        assert_eq!(settings.at("ldap.url").to_string(), "ldap.url");
        assert_eq!(
            settings.resolve("data_dir", Path::new("./data")),
            PathBuf::from("./data")
        );
    }

    #[test]
    fn empty_section_does_not_count_as_set() {
        let table: Table = "[ldap]\n[tls]\ncert = \"c\"\n"
            .parse()
            .expect("test TOML parses");
        let settings = Settings::new(table, None, &[]);
        assert!(!settings.has_section("ldap"));
        assert!(settings.has_section("tls"));
        assert!(!settings.has_section("auth"));
    }
}
