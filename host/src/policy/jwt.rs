//! Checking JSON Web Tokens with `jsonwebtoken`: the accepted algorithms, the HS256 secret from
//! the environment, public keys from a PEM or JWKS file (chosen by the token's `kid` when it
//! has one), issuer, audience, and `exp` / `nbf` with a leeway. A token's `sub` is its
//! subject; its scopes are its `scope` (space-separated) or `scp` (a list) claim.
//!
//! A token that passed is remembered (a bounded cache, by its text) until it expires: its
//! signature, issuer and audience cannot change, so a client sending the same token again
//! costs a lookup and the time checks instead of a signature check (an ES256 one takes a few
//! hundred microseconds; `make bench-edge`).

use std::path::Path;

use anyhow::{Context, bail};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::Identity;
use crate::config::Jwt;

/// Tokens remembered at once; past it the least used are forgotten (and checked again when
/// they come back). A few MiB at most.
const REMEMBERED_TOKENS: usize = 10_000;

/// Who a token that passed names, and when it stops being valid.
#[derive(Clone)]
struct Verified {
    identity: Identity,
    expires: u64,
    not_before: Option<u64>,
}

/// One public key and the key id it is published under, if any.
struct PublicKey {
    kid: Option<String>,
    key: DecodingKey,
}

pub(super) struct Verifier {
    /// The accepted algorithms, each with what a token signed with it must satisfy.
    validations: Vec<(Algorithm, Validation)>,
    secret: Option<DecodingKey>,
    keys: Vec<PublicKey>,
    leeway: u64,
    remembered: quick_cache::sync::Cache<String, Verified>,
}

/// The claims the host reads; the signature and time checks are the library's.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<String>,
    scp: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
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
        let validations = allowed.into_iter().map(|alg| (alg, validation(alg, config))).collect();
        Ok(Self {
            validations,
            secret,
            keys,
            leeway: config.leeway_seconds,
            remembered: quick_cache::sync::Cache::new(REMEMBERED_TOKENS),
        })
    }

    /// The identity a valid token carries, or why it is not valid (said to the client).
    pub(super) fn verify(&self, token: &str) -> Result<Identity, String> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(known) = self.remembered.get(token) {
            let started = known.not_before.is_none_or(|nbf| nbf <= now.saturating_add(self.leeway));
            if started && now <= known.expires.saturating_add(self.leeway) {
                return Ok(known.identity);
            }
        }
        let verified = self.check(token)?;
        let identity = verified.identity.clone();
        self.remembered.insert(token.to_string(), verified);
        Ok(identity)
    }

    /// Checks a token in full: its signature, claims and times.
    fn check(&self, token: &str) -> Result<Verified, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is malformed".to_string())?;
        let Some((_, validation)) = self.validations.iter().find(|(alg, _)| *alg == header.alg) else {
            return Err(format!("tokens signed with {:?} are not accepted", header.alg));
        };
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
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => return verified(data.claims),
                Err(e) => why = explain(e.kind()),
            }
        }
        Err(why)
    }
}

/// What a token signed with `alg` must satisfy: `exp`, `nbf` with the leeway, and the issuer
/// and audience when the config names them.
fn validation(alg: Algorithm, config: &Jwt) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = config.leeway_seconds;
    validation.validate_nbf = true;
    let mut required = vec!["exp"];
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &config.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// What a valid token says. `exp` is required (and checked) by then; a token whose times
/// are not whole seconds is refused rather than half-read.
fn verified(claims: Claims) -> Result<Verified, String> {
    let seconds = |claim: &Option<Value>| claim.as_ref().map(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
    let (Some(Some(expires)), not_before) = (seconds(&claims.exp), seconds(&claims.nbf)) else {
        return Err("the token's exp claim is malformed".into());
    };
    let not_before = match not_before {
        None => None,
        Some(Some(nbf)) => Some(nbf),
        Some(None) => return Err("the token's nbf claim is malformed".into()),
    };
    let mut scopes: Vec<String> = claims.scope.iter().flat_map(|s| s.split_whitespace()).map(String::from).collect();
    match claims.scp {
        Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(String::from)),
        Some(Value::Array(list)) => scopes.extend(list.iter().filter_map(Value::as_str).map(String::from)),
        _ => {}
    }
    Ok(Verified { identity: Identity { subject: claims.sub, scopes, method: "jwt" }, expires, not_before })
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

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn verifier() -> Verifier {
        let config = Jwt { leeway_seconds: 0, ..Jwt::default() };
        Verifier {
            validations: vec![(Algorithm::HS256, validation(Algorithm::HS256, &config))],
            secret: Some(DecodingKey::from_secret(b"secret").unwrap()),
            keys: Vec::new(),
            leeway: 0,
            remembered: quick_cache::sync::Cache::new(16),
        }
    }

    fn token(claims: Value) -> String {
        jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(b"secret").unwrap()).unwrap()
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let verifier = verifier();
        let now = jsonwebtoken::get_current_timestamp();
        let brief = token(json!({ "sub": "ada", "scp": ["shop"], "exp": now + 1 }));
        let identity = verifier.verify(&brief).unwrap();
        assert_eq!((identity.subject.as_deref(), identity.scopes.as_slice()), (Some("ada"), &["shop".to_string()][..]));
        assert!(verifier.remembered.get(&brief).is_some(), "remembered once it passed");
        assert!(verifier.verify(&brief).is_ok(), "and passing again from memory");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(verifier.verify(&brief).err().as_deref(), Some("the token has expired"));
    }

    #[test]
    fn a_refused_token_is_not_remembered() {
        let verifier = verifier();
        let now = jsonwebtoken::get_current_timestamp();
        let early = token(json!({ "sub": "ada", "exp": now + 600, "nbf": now + 300 }));
        assert!(verifier.verify(&early).unwrap_err().contains("not valid yet"));
        assert!(verifier.remembered.get(&early).is_none());
        let forged = jsonwebtoken::encode(
            &Header::default(),
            &json!({ "exp": now + 600 }),
            &EncodingKey::from_secret(b"guess").unwrap(),
        );
        assert!(verifier.verify(&forged.unwrap()).unwrap_err().contains("signature"));
    }
}
