//! Config loading: defaults, then a TOML file, then environment variables.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file is missing, not TOML, or a value has the wrong type or an unknown field.
    #[error("invalid config: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// Loads `T`: its `Default`, overridden by the TOML `file` if given, overridden by environment
/// variables named `{env_prefix}{FIELD}` (e.g. `SWARMCAST_TRACKER_SECRET` for field `secret` with
/// prefix `SWARMCAST_TRACKER_`; nested fields use `__`).
///
/// # Errors
/// [`ConfigError::Invalid`] when the file cannot be read or any value does not fit `T`.
pub fn load_config<T>(file: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(Env::prefixed(env_prefix).split("__"));
    figment.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        port: u16,
        name: String,
    }

    impl Default for Demo {
        fn default() -> Self {
            Self { port: 1, name: "a".into() }
        }
    }

    #[test]
    // `figment::Jail` fixes the closure's error type; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn file_then_env_override_defaults() {
        let dir = std::env::temp_dir().join(format!("svc-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "port = 2\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SVCTEST_NAME", "b");
            let cfg: Demo = load_config(Some(&file), "SVCTEST_").unwrap();
            assert_eq!(cfg, Demo { port: 2, name: "b".into() });
            Ok(())
        });
        std::fs::write(&file, "nope = 3\n").unwrap();
        assert!(load_config::<Demo>(Some(&file), "SVCTEST_").is_err());
    }
}
