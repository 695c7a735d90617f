//! The edge's settings: `[auth.jwt]`, `[[auth.api_keys]]` and `[[policies]]`. Which requests
//! a policy covers, and how the host checks them, is the policy module's business; here are
//! only the file's keys and their defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How clients prove who they are: signed tokens, API keys, or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub jwt: Option<Jwt>,
    pub api_keys: Vec<ApiKey>,
}

/// JSON Web Tokens: who may issue them, for whom, and the keys that check their signatures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Jwt {
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` a token must carry (one of), when set.
    pub audience: Option<String>,
    /// The signature algorithms accepted, e.g. `["RS256", "ES256"]`; a token signed otherwise is refused.
    pub algorithms: Vec<String>,
    /// The environment variable holding the HS256 secret. The secret is never in the file.
    pub hs256_secret_env: Option<String>,
    /// A PEM file (one or more public keys) or a JWKS file, for RS256 / ES256 and the like;
    /// relative to the config file's folder.
    pub public_keys: Option<PathBuf>,
    /// Seconds of clock difference forgiven when checking `exp` and `nbf`.
    pub leeway_seconds: u64,
}

impl Default for Jwt {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: None,
            algorithms: Vec::new(),
            hs256_secret_env: None,
            public_keys: None,
            leeway_seconds: 30,
        }
    }
}

/// One API key, kept only as the SHA-256 of the key (hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who holds it; reaches the component as the subject.
    pub name: String,
    pub sha256: String,
    /// The scopes it grants, checked like a token's (none by default).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Rules for the requests of some routes or components, checked before they reach one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Its name in metrics and logs [default: its first route, or `component:NAME`].
    pub name: Option<String>,
    /// Route patterns, as in the router: `/api/v1/orders/{*rest}`.
    pub routes: Vec<String>,
    /// Components whose every route it covers, unless a route policy is more specific.
    pub components: Vec<String>,
    pub auth: AuthMethod,
    /// Every one must be in the token's `scope` (space-separated) or `scp` (list) claim.
    pub scopes: Vec<String>,
    pub rate_limit: Option<RateLimit>,
    pub cors: Option<Cors>,
}

/// What a request under a policy must present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    #[default]
    None,
    Jwt,
    ApiKey,
    JwtOrApiKey,
}

/// A token bucket per client: `requests` every `per_seconds`, bursts of up to `burst`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per: Per,
    pub requests: u32,
    #[serde(default = "one")]
    pub per_seconds: u64,
    /// The most requests at once from a full bucket [default: `requests`].
    pub burst: Option<u32>,
}

fn one() -> u64 {
    1
}

/// Whose bucket a request takes from. A request without the identity named falls back to
/// its client's IP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Per {
    Ip,
    ApiKey,
    Subject,
}

/// Which browser origins may call these routes, with which methods and headers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Origins such as `https://shop.example.com`, or `*` for any.
    pub origins: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    /// How long a browser may cache a preflight's answer [default: 600].
    #[serde(default = "ten_minutes")]
    pub max_age_seconds: u64,
}

fn ten_minutes() -> u64 {
    600
}
