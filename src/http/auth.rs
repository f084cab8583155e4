//! Identity: bearer JWTs carrying the user id, name, department and roles, signed with a
//! shared secret (HS256) or by an identity provider whose public key is configured (RS256
//! for an RSA key, ES256 for a P-256 key).

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use opsledger_domain::kernel::aggregate::Role;
use opsledger_domain::kernel::event::SYSTEM_PREFIX;
use opsledger_domain::{Actor, ActorKind};
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
    algorithm: Algorithm,
    /// None when only the public key is known: tokens come from the identity provider.
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

/// The environment variable holding the signing secret.
pub const SECRET_VAR: &str = "OPSLEDGER_JWT_SECRET";

/// The environment variable naming a PEM file with the identity provider's public key.
pub const PUBLIC_KEY_VAR: &str = "OPSLEDGER_JWT_PUBLIC_KEY_FILE";

/// The environment variable naming a PEM file with the matching private key, for
/// `opsledger token` (local use; a provider keeps its private key to itself).
pub const PRIVATE_KEY_VAR: &str = "OPSLEDGER_JWT_PRIVATE_KEY_FILE";

/// The file under the data directory holding a generated secret.
const SECRET_FILE: &str = "jwt-secret";

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Self {
        Keys {
            algorithm: Algorithm::HS256,
            encoding: Some(EncodingKey::from_secret(secret)),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Checks tokens with a PEM public key, RSA (RS256) or P-256 (ES256); signs them too
    /// when the matching private key is given.
    ///
    /// # Errors
    /// When the PEM holds neither kind of key, or the private key is not of the same kind.
    pub fn from_public_key_pem(public: &[u8], private: Option<&[u8]>) -> anyhow::Result<Self> {
        let (algorithm, decoding) = if let Ok(key) = DecodingKey::from_rsa_pem(public) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(public) {
            (Algorithm::ES256, key)
        } else {
            anyhow::bail!("not an RSA or P-256 public key in PEM");
        };
        let encoding = private
            .map(|pem| match algorithm {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
                _ => EncodingKey::from_ec_pem(pem),
            })
            .transpose()
            .map_err(|e| anyhow::anyhow!("the private key does not go with the public key: {e}"))?;
        Ok(Keys {
            algorithm,
            encoding,
            decoding,
        })
    }

    /// The configured secret: `OPSLEDGER_JWT_SECRET`, or on the embedded store a secret
    /// generated once and kept in the data directory, so a new user needs no set-up.
    ///
    /// # Errors
    /// On PostgreSQL without the variable (replicas must share one secret), or when the
    /// secret file cannot be read or written.
    pub fn configured(data_dir: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(public) = std::env::var_os(PUBLIC_KEY_VAR) {
            anyhow::ensure!(
                std::env::var_os(SECRET_VAR).is_none(),
                "set {SECRET_VAR} or {PUBLIC_KEY_VAR}, not both"
            );
            let read = |path: &std::ffi::OsStr, var: &str| {
                std::fs::read(path)
                    .with_context(|| format!("{var}: cannot read {}", Path::new(path).display()))
            };
            let public = read(&public, PUBLIC_KEY_VAR)?;
            let private = match std::env::var_os(PRIVATE_KEY_VAR) {
                Some(path) => Some(read(&path, PRIVATE_KEY_VAR)?),
                None => None,
            };
            return Self::from_public_key_pem(&public, private.as_deref()).context(PUBLIC_KEY_VAR);
        }
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
        let Some(key) = &self.encoding else {
            anyhow::bail!(
                "tokens are checked with a public key here: the identity provider signs them \
                 (for local use, set {PRIVATE_KEY_VAR} to the matching private key)"
            );
        };
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            claims,
            key,
        )?)
    }

    /// The actor a token names.
    ///
    /// # Errors
    /// Why the token is refused: bad signature, expired, malformed, a subject that claims
    /// to be a system component (`system:…`), or an unknown role.
    pub fn verify(&self, token: &str) -> Result<Actor, String> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &Validation::new(self.algorithm))
                .map_err(|e| format!("the token is not valid: {e}"))?;
        let claims = data.claims;
        if claims.sub.starts_with(SYSTEM_PREFIX) {
            return Err(format!(
                "the token's subject {:?} names a system component; no token may act as one",
                claims.sub
            ));
        }
        for role in &claims.roles {
            role.parse::<Role>()?;
        }
        Ok(Actor {
            kind: ActorKind::User,
            id: claims.sub,
            name: claims.name,
            department: claims.department,
            roles: claims.roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &[u8] = include_bytes!("../../tests/keys/es256-public.pem");
    const PRIVATE: &[u8] = include_bytes!("../../tests/keys/es256-private.pem");
    const OTHER: &[u8] = include_bytes!("../../tests/keys/other-private.pem");

    fn claims() -> Claims {
        Claims {
            sub: "u-ho".into(),
            name: None,
            department: Some("財政局".into()),
            roles: vec!["approver".into()],
            exp: 4_000_000_000,
        }
    }

    #[test]
    fn a_public_key_checks_what_its_private_key_signed_and_nothing_else() {
        let keys = Keys::from_public_key_pem(PUBLIC, Some(PRIVATE)).unwrap();
        let token = keys.mint(&claims()).unwrap();
        assert_eq!(keys.verify(&token).unwrap().id, "u-ho");

        let checking_only = Keys::from_public_key_pem(PUBLIC, None).unwrap();
        assert_eq!(checking_only.verify(&token).unwrap().id, "u-ho");
        let refused = checking_only.mint(&claims()).unwrap_err().to_string();
        assert!(refused.contains(PRIVATE_KEY_VAR), "{refused}");

        let forged = Keys::from_public_key_pem(PUBLIC, Some(OTHER))
            .unwrap()
            .mint(&claims())
            .unwrap();
        assert!(
            checking_only.verify(&forged).is_err(),
            "signed by another key"
        );
        let hs256 = Keys::from_secret(PUBLIC).mint(&claims()).unwrap();
        assert!(
            checking_only.verify(&hs256).is_err(),
            "an HS256 token keyed with the public key itself is refused"
        );
        assert!(Keys::from_public_key_pem(b"not a key", None).is_err());
    }

    #[test]
    fn a_correctly_signed_token_cannot_name_a_system_component() {
        let keys = Keys::from_secret(b"a secret of sixteen or more");
        let mut claims = claims();
        claims.sub = "system:scheduler".into();
        claims.roles = Vec::new();
        let refused = keys.verify(&keys.mint(&claims).unwrap()).unwrap_err();
        assert!(refused.contains("system component"), "{refused}");
        claims.sub = "u-system".into();
        let actor = keys.verify(&keys.mint(&claims).unwrap()).unwrap();
        assert_eq!(actor.kind, ActorKind::User);
    }
}
