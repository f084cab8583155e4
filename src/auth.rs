//! Identity: bearer JWTs (HS256) carrying the user id, name, department and roles.

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use opsledger_domain::aggregate::Role;
use opsledger_domain::Actor;
use serde::{Deserialize, Serialize};

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub name: Option<String>,
    pub department: Option<String>,
    pub roles: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// The keys tokens are signed and checked with.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The environment variable holding the signing secret.
pub const SECRET_VAR: &str = "OPSLEDGER_JWT_SECRET";

/// The file under the data directory holding a generated secret.
const SECRET_FILE: &str = "jwt-secret";

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// The configured secret: `OPSLEDGER_JWT_SECRET`, or on the embedded store a secret
    /// generated once and kept in the data directory, so a new user needs no set-up.
    ///
    /// # Errors
    /// On PostgreSQL without the variable (replicas must share one secret), or when the
    /// secret file cannot be read or written.
    pub fn configured(data_dir: Option<&Path>) -> anyhow::Result<Self> {
        if let Ok(secret) = std::env::var(SECRET_VAR) {
            anyhow::ensure!(
                secret.len() >= 16,
                "{SECRET_VAR} must be at least 16 characters"
            );
            return Ok(Self::from_secret(secret.as_bytes()));
        }
        let Some(dir) = data_dir else {
            anyhow::bail!("set {SECRET_VAR}: replicas sharing a PostgreSQL database must share one signing secret");
        };
        let path = dir.join(SECRET_FILE);
        if !path.exists() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            std::fs::write(&path, secret)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let secret =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self::from_secret(&secret))
    }

    /// Signs a token for `claims`.
    ///
    /// # Errors
    /// When the claims cannot be encoded.
    pub fn mint(&self, claims: &Claims) -> anyhow::Result<String> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// The actor a token names.
    ///
    /// # Errors
    /// Why the token is refused: bad signature, expired, malformed, or an unknown role.
    pub fn verify(&self, token: &str) -> Result<Actor, String> {
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &self.decoding,
            &Validation::new(Algorithm::HS256),
        )
        .map_err(|e| format!("the token is not valid: {e}"))?;
        let claims = data.claims;
        for role in &claims.roles {
            role.parse::<Role>()?;
        }
        Ok(Actor {
            id: claims.sub,
            name: claims.name,
            department: claims.department,
            roles: claims.roles,
        })
    }
}
