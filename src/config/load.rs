//! Loading: the provider stack (defaults, `proxy.toml`, the seed's variables, `SIDECAR_*`),
//! the seed's variable names, and figment's errors turned into one line naming the key.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;

use super::{redact_url, Config, ConfigError};

impl Config {
    /// Loads defaults, then the TOML file (if it exists), then the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = Self::figment(path)
            .extract()
            .map_err(|e| figment_error(&e))?;
        // The seed treats an empty `COGNITO_APP_CLIENT_SECRET` as "no secret".
        if config.cognito.client_secret.as_deref() == Some("") {
            config.cognito.client_secret = None;
        }
        Ok(config)
    }

    /// The provider stack, exposed so tests can use `figment::Jail`.
    pub fn figment(path: &Path) -> Figment {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(seed_env())
            .merge(Env::prefixed("SIDECAR_").split("__"))
    }

    /// The effective configuration as JSON, with the client secret redacted.
    pub fn redacted_json(&self) -> String {
        let mut copy = self.clone();
        if copy.cognito.client_secret.is_some() {
            copy.cognito.client_secret = Some("<redacted>".into());
        }
        if copy.shared.password.is_some() {
            copy.shared.password = Some("<redacted>".into());
        }
        copy.shared.url = redact_url(&copy.shared.url);
        serde_json::to_string_pretty(&copy).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// The seed's variable names and the keys they set, so an existing ECS task definition keeps
/// working (`seed_env`; the configuration reference lists them beside `SIDECAR_*`).
pub const SEED_ENV: [(&str, &str); 4] = [
    ("AWS_REGION", "cognito.region"),
    ("COGNITO_USER_POOL_ID", "cognito.user_pool_id"),
    ("COGNITO_APP_CLIENT_ID", "cognito.client_id"),
    ("COGNITO_APP_CLIENT_SECRET", "cognito.client_secret"),
];

/// The seed's variables, read as the keys of `SEED_ENV`.
fn seed_env() -> Env {
    Env::raw().only(&SEED_ENV.map(|(var, _)| var)).map(|k| {
        let var = k.as_str().to_ascii_uppercase();
        SEED_ENV
            .iter()
            .find(|(v, _)| *v == var)
            .map_or("cognito.client_secret", |(_, key)| *key)
            .into()
    })
}

fn figment_error(e: &figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "config".to_string()
    } else {
        e.path.join(".")
    };
    let problem = match &e.kind {
        figment::error::Kind::UnknownField(field, _) => {
            let key = if e.path.last() == Some(field) || e.path.is_empty() && key == *field {
                key
            } else if e.path.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError::new(key, "unknown key");
        }
        figment::error::Kind::UnknownVariant(found, expected) => {
            let expected: Vec<String> = expected.iter().map(|v| format!("{v:?}")).collect();
            format!(
                "unknown value {found:?}; expected {}",
                expected.join(" or ")
            )
        }
        other => other.to_string(),
    };
    let source = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    ConfigError::new(key, format!("{problem}{source}"))
}
