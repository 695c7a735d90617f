//! Which component answers which request: route patterns, their precedence, and conflicts.
//!
//! Patterns are `/literal/{param}/...`, optionally ending in `{*rest}`. The most specific
//! pattern wins: compared segment by segment, a literal beats a `{param}`, which beats a
//! `{*rest}`; then the longer pattern wins. Routes come from the components (the
//! `trellis:http/routes` export), the default `/NAME/{*rest}` rule, or the config file.

use std::cmp::Ordering;
use std::fmt;

use http::Method;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

impl Segment {
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Rest(_) => 0,
        }
    }

    /// Two segments that accept exactly the same inputs, whatever their param names.
    fn same_shape(&self, other: &Segment) -> bool {
        match (self, other) {
            (Segment::Literal(a), Segment::Literal(b)) => a == b,
            (a, b) => a.rank() == b.rank(),
        }
    }
}

/// A parsed route pattern such as `/api/v1/users/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.strip_prefix('/').ok_or_else(|| format!("route pattern {text:?} must start with '/'"))?;
        let parts: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if name.starts_with('*') => {
                    if i + 1 != parts.len() {
                        return Err(format!("route pattern {text:?}: {{{name}}} must be the last segment"));
                    }
                    Segment::Rest(name[1..].to_string())
                }
                Some("") => return Err(format!("route pattern {text:?} has an unnamed {{}} segment")),
                Some(name) => Segment::Param(name.to_string()),
                None if part.contains(['{', '}']) => {
                    return Err(format!("route pattern {text:?}: a segment is either literal or a whole {{param}}"));
                }
                None => Segment::Literal((*part).to_string()),
            };
            segments.push(segment);
        }
        Ok(Self { text: text.to_string(), segments })
    }

    /// The default rule for a plain `wasi:http` component: `/NAME` and everything below it.
    pub fn prefix(name: &str) -> Self {
        Self::parse(&format!("/{name}/{{*rest}}")).expect("component names are valid literals")
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches a request path, returning the captured params.
    fn matches(&self, path: &[&str]) -> Option<Vec<(String, String)>> {
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Rest(name) => {
                    params.push((name.clone(), path.get(i..).unwrap_or_default().join("/")));
                    return Some(params);
                }
                Segment::Literal(lit) => {
                    if path.get(i) != Some(&lit.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => params.push((name.clone(), (*path.get(i)?).to_string())),
            }
        }
        (path.len() == self.segments.len()).then_some(params)
    }

    /// Most specific first.
    fn specificity(&self, other: &Pattern) -> Ordering {
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match b.rank().cmp(&a.rank()) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        other.segments.len().cmp(&self.segments.len())
    }

    fn same_shape(&self, other: &Pattern) -> bool {
        self.segments.len() == other.segments.len()
            && self.segments.iter().zip(&other.segments).all(|(a, b)| a.same_shape(b))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One route: a method (or any), a pattern, and the component that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Option<Method>,
    pub pattern: Pattern,
    pub component: String,
}

impl Route {
    /// Parses `"GET /api/v1/users/{id}"` or `"/hello/{*rest}"` (any method).
    pub fn parse(spec: &str, component: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (method, pattern) = match spec.split_once(' ') {
            Some((m, p)) => {
                let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("route {spec:?}: {m:?} is not an HTTP method"))?;
                (Some(method), p.trim())
            }
            None => (None, spec),
        };
        Ok(Self { method, pattern: Pattern::parse(pattern)?, component: component.to_string() })
    }

    fn overlaps(&self, other: &Route) -> bool {
        let methods_overlap = match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        methods_overlap && self.pattern.same_shape(&other.pattern)
    }

    fn describe(&self) -> String {
        match &self.method {
            Some(m) => format!("{m} {}", self.pattern),
            None => format!("{} (any method)", self.pattern),
        }
    }
}

/// What the router decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    Found { component: &'a str, pattern: &'a str, params: Vec<(String, String)> },
    MethodNotAllowed { allowed: Vec<Method> },
    NotFound,
}

/// The route table of every loaded component, kept sorted most specific first.
#[derive(Debug, Default, Clone)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Adds a component's routes, all or none: a route that overlaps one of another
    /// component's is refused with an error naming both.
    pub fn add(&mut self, routes: Vec<Route>) -> Result<(), String> {
        for (i, route) in routes.iter().enumerate() {
            let earlier = self.routes.iter().chain(&routes[..i]).find(|r| r.overlaps(route));
            if let Some(existing) = earlier {
                return Err(format!(
                    "route {} of component '{}' conflicts with route {} of component '{}'",
                    route.describe(),
                    route.component,
                    existing.describe(),
                    existing.component
                ));
            }
        }
        self.routes.extend(routes);
        self.routes.sort_by(|a, b| a.pattern.specificity(&b.pattern).then(b.method.is_some().cmp(&a.method.is_some())));
        Ok(())
    }

    /// Removes every route of one component.
    pub fn remove(&mut self, component: &str) {
        self.routes.retain(|r| r.component != component);
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut allowed: Vec<Method> = Vec::new();
        let mut best_shape: Option<&Pattern> = None;
        for route in &self.routes {
            let Some(params) = route.pattern.matches(&segments) else { continue };
            match &route.method {
                None => return Lookup::Found { component: &route.component, pattern: route.pattern.as_str(), params },
                Some(m) if m == method || (method == Method::HEAD && m == Method::GET) => {
                    return Lookup::Found { component: &route.component, pattern: route.pattern.as_str(), params };
                }
                Some(m) => {
                    // Only the most specific matching pattern decides which methods exist here.
                    if best_shape.is_none_or(|p| p.same_shape(&route.pattern)) {
                        best_shape = Some(&route.pattern);
                        allowed.push(m.clone());
                    }
                }
            }
        }
        if allowed.is_empty() { Lookup::NotFound } else { Lookup::MethodNotAllowed { allowed } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(specs: &[(&str, &str)]) -> Router {
        let mut router = Router::default();
        for (component, spec) in specs {
            router.add(vec![Route::parse(spec, component).unwrap()]).unwrap();
        }
        router
    }

    fn found<'a>(router: &'a Router, method: Method, path: &str) -> Option<&'a str> {
        match router.lookup(&method, path) {
            Lookup::Found { component, .. } => Some(component),
            _ => None,
        }
    }

    #[test]
    fn the_most_specific_pattern_wins_across_components() {
        let r = router(&[
            ("users", "GET /api/v1/users/{id}"),
            ("gateway", "GET /api/v1/users/{id}/profile"),
            ("users", "GET /api/v1/users/me"),
            ("catchall", "/api/{*rest}"),
        ]);
        assert_eq!(found(&r, Method::GET, "/api/v1/users/7"), Some("users"));
        assert_eq!(found(&r, Method::GET, "/api/v1/users/7/profile"), Some("gateway"));
        assert_eq!(found(&r, Method::GET, "/api/v1/users/me"), Some("users"));
        assert_eq!(found(&r, Method::GET, "/api/v2/anything/else"), Some("catchall"));
        assert_eq!(found(&r, Method::GET, "/other"), None);
    }

    #[test]
    fn params_and_rest_are_captured() {
        let r = router(&[("hello", "/hello/{*rest}"), ("users", "GET /users/{id}")]);
        let Lookup::Found { params, .. } = r.lookup(&Method::GET, "/users/42") else { panic!() };
        assert_eq!(params, vec![("id".to_string(), "42".to_string())]);
        let Lookup::Found { params, .. } = r.lookup(&Method::POST, "/hello/a/b") else { panic!() };
        assert_eq!(params, vec![("rest".to_string(), "a/b".to_string())]);
        assert_eq!(found(&r, Method::GET, "/hello/"), Some("hello"));
        assert_eq!(found(&r, Method::GET, "/hello"), Some("hello"));
    }

    #[test]
    fn a_known_path_with_an_unknown_method_is_405_with_the_allowed_methods() {
        let r = router(&[("users", "GET /users/{id}"), ("users2", "DELETE /users/{id}")]);
        assert_eq!(
            r.lookup(&Method::PATCH, "/users/1"),
            Lookup::MethodNotAllowed { allowed: vec![Method::GET, Method::DELETE] }
        );
        assert_eq!(found(&r, Method::HEAD, "/users/1"), Some("users"));
    }

    #[test]
    fn the_same_method_and_pattern_from_two_components_is_refused_naming_both() {
        let mut r = router(&[("users", "GET /api/v1/users/{id}")]);
        let err = r.add(vec![Route::parse("GET /api/v1/users/{user_id}", "impostor").unwrap()]).unwrap_err();
        assert!(err.contains("'impostor'") && err.contains("'users'"), "{err}");
        r.add(vec![Route::parse("PUT /api/v1/users/{user_id}", "editor").unwrap()]).unwrap();
        assert!(r.add(vec![Route::parse("/api/v1/users/{x}", "any").unwrap()]).is_err(), "any method overlaps GET");
    }

    #[test]
    fn removing_a_component_drops_only_its_routes() {
        let mut r = router(&[("a", "/a/{*rest}"), ("b", "/b/{*rest}")]);
        r.remove("a");
        assert_eq!(found(&r, Method::GET, "/a/x"), None);
        assert_eq!(found(&r, Method::GET, "/b/x"), Some("b"));
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_reason() {
        assert!(Pattern::parse("api").unwrap_err().contains("must start with '/'"));
        assert!(Pattern::parse("/a/{*rest}/b").unwrap_err().contains("last segment"));
        assert!(Pattern::parse("/a/x{id}").is_err());
        assert!(Route::parse("GE{T /a", "c").unwrap_err().contains("not an HTTP method"));
    }
}
