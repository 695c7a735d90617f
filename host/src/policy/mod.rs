//! The edge's policies: which requests need a token or an API key (`jwt`, `keys`), which
//! scopes, how many per client (`limit`), and which browser origins may call (`cors`). The
//! host checks them before a request reaches a component, so no component re-implements them.
//!
//! A policy covers route patterns (matched as the router matches them, most specific first)
//! or whole components; a route policy beats a component policy, and a request matched by
//! none is open. What passes reaches the component with the caller's identity in headers
//! the host sets itself (`x-trellis-subject`, `x-trellis-scopes`, `x-trellis-auth`), after
//! removing any a client sent. The listener calls in; this module calls no component.

mod cors;
mod jwt;
mod keys;
mod limit;

pub(crate) use cors::preflight_method;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use self::cors::CorsRule;
use self::jwt::Verifier;
use self::keys::ApiKeys;
use self::limit::{Limiter, Verdict};
use crate::config::{AuthMethod, Config, Per, Policy};
use crate::http::responses::{self, Response};
use crate::http::router::{Lookup, Route, Router};
use crate::ops::metrics::METRICS;

/// The caller's subject (a token's `sub`, an API key's name), set by the host.
pub(crate) const SUBJECT_HEADER: &str = "x-trellis-subject";
/// The caller's scopes, space-separated, set by the host.
pub(crate) const SCOPES_HEADER: &str = "x-trellis-scopes";
/// How the caller authenticated: `jwt` or `api-key`, set by the host.
pub(crate) const AUTH_HEADER: &str = "x-trellis-auth";

/// Who a request comes from, as its token or key says.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) subject: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) method: &'static str,
}

/// One policy, ready to check requests.
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) auth: AuthMethod,
    pub(crate) scopes: Vec<String>,
    limiter: Option<Limiter>,
    cors: Option<CorsRule>,
}

impl Rule {
    /// Whether it limits how often a client may call.
    pub(crate) fn limited(&self) -> bool {
        self.limiter.is_some()
    }
}

/// Every policy of the config file, with the keys they check against.
#[derive(Default)]
pub(crate) struct Policies {
    rules: Vec<Rule>,
    /// The route patterns of every policy; each route's "component" is its policy's name.
    routes: Router,
    by_name: HashMap<String, usize>,
    by_component: HashMap<String, usize>,
    jwt: Option<Verifier>,
    keys: ApiKeys,
}

/// What passing a policy adds to the answer: rate-limit state and CORS headers.
#[derive(Default)]
pub(crate) struct Passed {
    headers: HeaderMap,
}

impl Passed {
    pub(crate) fn apply(self, response: &mut Response) {
        for (name, value) in self.headers {
            if let Some(name) = name {
                response.headers_mut().append(name, value);
            }
        }
    }
}

impl Policies {
    /// Builds the policies of `config`; files it names are under `base`. Every mistake in them
    /// is a start-up error naming the policy.
    pub(crate) fn new(config: &Config, base: &Path) -> anyhow::Result<Self> {
        let jwt = config.auth.jwt.as_ref().map(|jwt| Verifier::new(jwt, base)).transpose()?;
        let mut policies = Self { jwt, keys: ApiKeys::new(&config.auth.api_keys)?, ..Self::default() };
        for (index, policy) in config.policies.iter().enumerate() {
            policies.add(index, policy)?;
        }
        Ok(policies)
    }

    fn add(&mut self, index: usize, policy: &Policy) -> anyhow::Result<()> {
        let name = policy.name.clone().unwrap_or_else(|| match (policy.routes.first(), policy.components.first()) {
            (Some(route), _) => route.clone(),
            (None, Some(component)) => format!("component:{component}"),
            (None, None) => format!("policy {}", index + 1),
        });
        let context = || format!("[[policies]] {name:?}");
        if policy.routes.is_empty() && policy.components.is_empty() {
            bail!("{}: names no routes and no components", context());
        }
        if self.by_name.contains_key(&name) {
            bail!("{}: two policies have this name", context());
        }
        let needs_jwt = matches!(policy.auth, AuthMethod::Jwt | AuthMethod::JwtOrApiKey);
        if needs_jwt && self.jwt.is_none() {
            bail!("{}: auth {:?} needs an [auth.jwt] section", context(), policy.auth);
        }
        if policy.auth == AuthMethod::ApiKey && self.keys.is_empty() {
            bail!("{}: auth \"api-key\" needs at least one [[auth.api_keys]]", context());
        }
        if policy.auth == AuthMethod::None && !policy.scopes.is_empty() {
            bail!("{}: scopes need an auth method to read them from", context());
        }
        let routes = policy.routes.iter().map(|r| Route::parse(r, &name).map_err(anyhow::Error::msg));
        let routes = routes.collect::<anyhow::Result<Vec<_>>>().with_context(context)?;
        self.routes.add(routes).map_err(|e| anyhow::anyhow!("[[policies]]: {}", e.replace("component", "policy")))?;
        for component in &policy.components {
            if self.by_component.insert(component.clone(), index).is_some() {
                bail!("{}: component {component:?} is covered by another policy already", context());
            }
        }
        let limiter = policy.rate_limit.as_ref().map(|l| Limiter::new(&name, l)).transpose();
        let cors = policy.cors.as_ref().map(CorsRule::new).transpose();
        let (limiter, cors) = (
            limiter.map_err(anyhow::Error::msg).with_context(context)?,
            cors.map_err(anyhow::Error::msg).with_context(context)?,
        );
        self.by_name.insert(name.clone(), index);
        self.rules.push(Rule { name, auth: policy.auth, scopes: policy.scopes.clone(), limiter, cors });
        Ok(())
    }

    /// The policy over a request for `path` served by `component`: the most specific route
    /// policy, else the component's.
    pub(crate) fn find(&self, path: &str, component: &str) -> Option<&Rule> {
        if self.rules.is_empty() {
            return None;
        }
        let index = match self.routes.lookup(&Method::GET, path) {
            Lookup::Found { component: policy, .. } => self.by_name.get(policy),
            _ => self.by_component.get(component),
        };
        index.map(|&i| &self.rules[i])
    }

    /// The answer to a browser's preflight, when `rule` says which origins may call.
    pub(crate) fn preflight(&self, rule: &Rule, request: &http::request::Parts, method: &Method) -> Option<Response> {
        let response = rule.cors.as_ref()?.preflight(request, method);
        if response.status() == StatusCode::FORBIDDEN {
            METRICS.record_refusal(&rule.name, "cors");
        }
        Some(response)
    }

    /// Checks a request against `rule`: authentication, scopes, then the client's rate limit.
    /// On success the caller's identity is set in the request's headers.
    pub(crate) fn admit(
        &self,
        rule: &Rule,
        request: &mut http::request::Parts,
        peer: IpAddr,
    ) -> Result<Passed, Box<Response>> {
        let mut passed = Passed::default();
        if let Some(cors) = &rule.cors {
            cors.decorate(cors::origin(&request.headers), &mut passed.headers);
        }
        let refuse = |passed: Passed, reason: &str, mut response: Response| {
            METRICS.record_refusal(&rule.name, reason);
            passed.apply(&mut response);
            Box::new(response)
        };
        let identity = match rule.auth {
            AuthMethod::None => None,
            method => match self.authenticate(method, &request.headers) {
                Ok(identity) => Some(identity),
                // Guessing credentials draws from the address's bucket: a client trying
                // keys or tokens one after another is slowed like any other.
                Err(refusal) => match rule.limiter.as_ref().map(|l| l.check(client(Per::Ip, None, peer))) {
                    Some(Verdict::Refuse { headers, wait }) => {
                        return Err(refuse(passed, "rate-limited", too_many(headers, wait)));
                    }
                    _ => return Err(refuse(passed, "unauthenticated", *refusal)),
                },
            },
        };
        let have = identity.as_ref().map(|i| i.scopes.as_slice()).unwrap_or_default();
        if let Some(missing) = rule.scopes.iter().find(|s| !have.contains(s)) {
            return Err(refuse(passed, "forbidden", insufficient_scope(missing, &rule.scopes)));
        }
        if let Some(limiter) = &rule.limiter {
            match limiter.check(client(limiter.per, identity.as_ref(), peer)) {
                Verdict::Pass(headers) => passed.headers.extend(headers),
                Verdict::Refuse { headers, wait } => {
                    return Err(refuse(passed, "rate-limited", too_many(headers, wait)));
                }
            }
        }
        if let Some(identity) = identity {
            let Some(values) = identity_values(&identity) else {
                let why = "the credentials name a subject or scope with control characters";
                return Err(refuse(passed, "unauthenticated", *unauthenticated(Some(why))));
            };
            let headers = &mut request.headers;
            for (name, value) in [SUBJECT_HEADER, SCOPES_HEADER, AUTH_HEADER].into_iter().zip(values) {
                if let Some(value) = value {
                    headers.insert(name, value);
                }
            }
        }
        Ok(passed)
    }

    /// The identity a request proves with the credentials `method` accepts, or the 401.
    fn authenticate(&self, method: AuthMethod, headers: &HeaderMap) -> Result<Identity, Box<Response>> {
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let looks_like_jwt = |token: &str| token.split('.').count() == 3;
        let as_key = |key: &str| self.keys.find(key).ok_or_else(|| unauthenticated(Some("the API key is not known")));
        let as_token = |token: &str| match &self.jwt {
            Some(jwt) => jwt.verify(token).map_err(|why| unauthenticated(Some(&why))),
            None => Err(unauthenticated(Some("tokens are not accepted here"))),
        };
        match (method, api_key, bearer) {
            (AuthMethod::Jwt, _, Some(token)) => as_token(token),
            (AuthMethod::ApiKey, Some(key), _) | (AuthMethod::ApiKey, None, Some(key)) => as_key(key),
            (AuthMethod::JwtOrApiKey, Some(key), _) => as_key(key),
            (AuthMethod::JwtOrApiKey, None, Some(token)) if looks_like_jwt(token) => as_token(token),
            (AuthMethod::JwtOrApiKey, None, Some(key)) => as_key(key),
            _ => Err(unauthenticated(None)),
        }
    }
}

/// Removes the identity headers a client sent: only the host sets them.
pub(crate) fn strip_identity(headers: &mut HeaderMap) {
    for name in [SUBJECT_HEADER, SCOPES_HEADER, AUTH_HEADER] {
        headers.remove(name);
    }
}

/// The identity as header values, subject, scopes and method (UTF-8 as it is: components read
/// the bytes), or None when one holds a control character no header can carry.
fn identity_values(identity: &Identity) -> Option<[Option<HeaderValue>; 3]> {
    let subject = match &identity.subject {
        Some(subject) => Some(HeaderValue::from_bytes(subject.as_bytes()).ok()?),
        None => None,
    };
    let scopes = HeaderValue::from_bytes(identity.scopes.join(" ").as_bytes()).ok()?;
    Some([subject, Some(scopes), Some(HeaderValue::from_static(identity.method))])
}

/// Whose bucket a request takes from: the identity the policy limits by, else its address.
fn client(per: Per, identity: Option<&Identity>, peer: IpAddr) -> String {
    let named = |method: Option<&str>| {
        identity.filter(|i| method.is_none_or(|m| i.method == m)).and_then(|i| i.subject.as_ref())
    };
    let name = match per {
        Per::Ip => None,
        Per::ApiKey => named(Some("api-key")).map(|n| format!("key:{n}")),
        Per::Subject => named(None).map(|n| format!("sub:{n}")),
    };
    name.unwrap_or_else(|| format!("ip:{peer}"))
}

/// 429 with the bucket's headers (`Retry-After` among them).
fn too_many(headers: HeaderMap, wait: std::time::Duration) -> Response {
    let message = format!("too many requests; try again in {} ms", wait.as_millis().max(1));
    let mut response = responses::error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    response.headers_mut().extend(headers);
    response
}

/// 401 with RFC 6750's `WWW-Authenticate`: bare when nothing was presented, `invalid_token`
/// with the reason otherwise.
fn unauthenticated(why: Option<&str>) -> Box<Response> {
    let message = why.unwrap_or("this route needs credentials: a bearer token, or an API key in X-API-Key");
    let mut response = responses::error(StatusCode::UNAUTHORIZED, "unauthenticated", message);
    let challenge = match why {
        None => "Bearer realm=\"trellis\"".to_string(),
        Some(why) => {
            format!("Bearer realm=\"trellis\", error=\"invalid_token\", error_description=\"{}\"", quoted(why))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    Box::new(response)
}

fn insufficient_scope(missing: &str, needed: &[String]) -> Response {
    let message = format!("this route needs the scope {missing}");
    let mut response = responses::error(StatusCode::FORBIDDEN, "insufficient_scope", message);
    let challenge =
        format!("Bearer realm=\"trellis\", error=\"insufficient_scope\", scope=\"{}\"", quoted(&needed.join(" ")));
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn quoted(text: &str) -> String {
    text.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect()
}
