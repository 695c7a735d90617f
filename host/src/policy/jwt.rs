//! Checking JSON Web Tokens with `jsonwebtoken`: the accepted algorithms, the HS256 secret from
//! the environment, public keys from a PEM or JWKS file (chosen by the token's `kid` when it
//! has one), issuer, audience, and `exp` / `nbf` with a leeway. A token's `sub` is its
//! subject; its scopes are its `scope` (space-separated) or `scp` (a list) claim.

use std::path::Path;

use anyhow::{Context, bail};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::Identity;
use crate::config::Jwt;

/// One public key and the key id it is published under, if any.
struct PublicKey {
    kid: Option<String>,
    key: DecodingKey,
}

pub(super) struct Verifier {
    allowed: Vec<Algorithm>,
    secret: Option<DecodingKey>,
    keys: Vec<PublicKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

/// The claims the host reads; the signature and time checks are the library's.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<String>,
    scp: Option<Value>,
}

impl Verifier {
    /// Reads the keys `config` names; relative paths are under `base` (the config file's folder).
    pub(super) fn new(config: &Jwt, base: &Path) -> anyhow::Result<Self> {
        let mut allowed = Vec::new();
        for name in &config.algorithms {
            let algorithm: Algorithm =
                name.parse().map_err(|_| anyhow::anyhow!("[auth.jwt] algorithms: {name:?} is not a JWT algorithm"))?;
            allowed.push(algorithm);
        }
        if allowed.is_empty() {
            bail!("[auth.jwt] algorithms is empty: name the accepted ones, e.g. [\"RS256\"]");
        }
        let hmac = allowed.iter().any(|a| a.family() == AlgorithmFamily::Hmac);
        let secret = match (&config.hs256_secret_env, hmac) {
            (Some(var), true) => {
                let secret = std::env::var(var).ok().filter(|s| !s.is_empty()).with_context(|| {
                    format!("[auth.jwt] hs256_secret_env: the environment variable {var} is not set")
                })?;
                Some(DecodingKey::from_secret(secret.as_bytes())?)
            }
            (None, true) => bail!("[auth.jwt] accepts HS256 but names no hs256_secret_env to read the secret from"),
            (_, false) => None,
        };
        let keys = match &config.public_keys {
            Some(file) => read_keys(&base.join(file))?,
            None => Vec::new(),
        };
        let public = allowed.iter().any(|a| a.family() != AlgorithmFamily::Hmac);
        if public && keys.is_empty() {
            bail!("[auth.jwt] accepts public-key algorithms but public_keys names no key file");
        }
        Ok(Self {
            allowed,
            secret,
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_seconds,
        })
    }

    /// The identity a valid token carries, or why it is not valid (said to the client).
    pub(super) fn verify(&self, token: &str) -> Result<Identity, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is malformed".to_string())?;
        if !self.allowed.contains(&header.alg) {
            return Err(format!("tokens signed with {:?} are not accepted", header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let candidates: Vec<&DecodingKey> = match header.alg.family() {
            AlgorithmFamily::Hmac => self.secret.iter().collect(),
            family => self
                .keys
                .iter()
                .filter(|k| k.key.family() == family)
                .filter(|k| header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
                .map(|k| &k.key)
                .collect(),
        };
        if candidates.is_empty() {
            return Err("no key here can check this token's signature".into());
        }
        let mut why = String::new();
        for key in candidates {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return Ok(identity(data.claims)),
                Err(e) => why = explain(e.kind()),
            }
        }
        Err(why)
    }
}

fn identity(claims: Claims) -> Identity {
    let mut scopes: Vec<String> = claims.scope.iter().flat_map(|s| s.split_whitespace()).map(String::from).collect();
    match claims.scp {
        Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(String::from)),
        Some(Value::Array(list)) => scopes.extend(list.iter().filter_map(Value::as_str).map(String::from)),
        _ => {}
    }
    Identity { subject: claims.sub, scopes, method: "jwt" }
}

fn explain(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "the token is not meant for this audience".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        _ => "the token is malformed".into(),
    }
}

/// The public keys of a JWKS document or of a file of PEM blocks.
fn read_keys(path: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("[auth.jwt] public_keys: cannot read {}", path.display()))?;
    let mut keys = Vec::new();
    if text.trim_start().starts_with('{') {
        let set: JwkSet = serde_json::from_str(&text)
            .with_context(|| format!("[auth.jwt] public_keys: {} is not a JWKS document", path.display()))?;
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk)
                .with_context(|| format!("[auth.jwt] public_keys: a key of {} cannot be used", path.display()))?;
            keys.push(PublicKey { kid: jwk.common.key_id.clone(), key });
        }
    } else {
        for block in text.split("-----BEGIN ").skip(1) {
            let pem = format!("-----BEGIN {block}");
            let bytes = pem.as_bytes();
            let key = DecodingKey::from_rsa_pem(bytes)
                .or_else(|_| DecodingKey::from_ec_pem(bytes))
                .or_else(|_| DecodingKey::from_ed_pem(bytes))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "[auth.jwt] public_keys: {} has a PEM block that is not an RSA, EC or Ed25519 public key",
                        path.display()
                    )
                })?;
            keys.push(PublicKey { kid: None, key });
        }
    }
    if keys.is_empty() {
        bail!("[auth.jwt] public_keys: {} holds no key", path.display());
    }
    Ok(keys)
}
