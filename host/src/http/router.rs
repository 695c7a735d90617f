//! Which component answers which request: route patterns, their precedence, and conflicts.
//!
//! Patterns are `/literal/{param}/...`, optionally ending in `{*rest}`. The most specific
//! pattern wins: compared segment by segment, a literal beats a `{param}`, which beats a
//! `{*rest}`, and an exact match beats a `{*rest}` that matches nothing. Routes come from the
//! components (the `trellis:http/routes` export), the default `/NAME/{*rest}` rule, or the
//! config file. The table is a tree with a level per segment: a component with tens of
//! thousands of routes costs the host a tree of that size, and a lookup still walks only the
//! request's own segments.

use std::collections::HashMap;
use std::fmt;

use http::Method;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
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

    /// The pattern as an OpenAPI path template (`{*rest}` written `{rest}`), and the names of
    /// its parameters in order.
    pub fn template(&self) -> (String, Vec<&str>) {
        let mut path = String::new();
        let mut params = Vec::new();
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(lit) => path.push_str(lit),
                Segment::Param(name) | Segment::Rest(name) => {
                    path.push_str(&format!("{{{name}}}"));
                    params.push(name.as_str());
                }
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        (path, params)
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

    /// Whether two routes of the same shape would answer the same requests.
    fn methods_overlap(&self, other: &Route) -> bool {
        match (&self.method, &other.method) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
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

/// The route table of every loaded component: a tree with one level per path segment, so
/// adding a route and looking up a path cost the depth of the path, not the number of routes.
#[derive(Debug, Default, Clone)]
pub struct Router {
    root: Node,
}

/// The patterns that share one shape up to here. `routes` are those that end here: one
/// for any method, or one per method.
#[derive(Debug, Default, Clone)]
struct Node {
    literals: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Patterns ending in `{*rest}` at this level.
    rest: Vec<Route>,
    routes: Vec<Route>,
}

impl Node {
    /// The routes of patterns shaped like `pattern`, made if missing.
    fn routes_mut(&mut self, pattern: &Pattern) -> &mut Vec<Route> {
        let mut node = self;
        for segment in &pattern.segments {
            node = match segment {
                Segment::Literal(lit) => node.literals.entry(lit.clone()).or_default(),
                Segment::Param(_) => node.param.get_or_insert_default(),
                Segment::Rest(_) => return &mut node.rest,
            };
        }
        &mut node.routes
    }

    fn remove(&mut self, component: &str) {
        self.routes.retain(|r| r.component != component);
        self.rest.retain(|r| r.component != component);
        self.literals.values_mut().for_each(|n| n.remove(component));
        self.param.iter_mut().for_each(|n| n.remove(component));
    }

    /// Calls `visit` with the routes of each shape matching `path`, most specific first, until
    /// it returns true: a literal before a `{param}` before a `{*rest}`, segment by segment,
    /// and an exact match before a `{*rest}` matching nothing.
    fn visit<'a>(&'a self, path: &[&str], visit: &mut impl FnMut(&'a [Route]) -> bool) -> bool {
        match path.split_first() {
            None => (!self.routes.is_empty() && visit(&self.routes)) || (!self.rest.is_empty() && visit(&self.rest)),
            Some((first, more)) => {
                self.literals.get(*first).is_some_and(|n| n.visit(more, visit))
                    || self.param.as_ref().is_some_and(|n| n.visit(more, visit))
                    || (!self.rest.is_empty() && visit(&self.rest))
            }
        }
    }
}

impl Router {
    /// Adds a component's routes, all or none: a route that overlaps one of another
    /// component's is refused with an error naming both.
    pub fn add(&mut self, routes: Vec<Route>) -> Result<(), String> {
        let mut next = self.root.clone();
        for route in routes {
            let same_shape = next.routes_mut(&route.pattern);
            if let Some(existing) = same_shape.iter().find(|r| r.methods_overlap(&route)) {
                return Err(format!(
                    "route {} of component '{}' conflicts with route {} of component '{}'",
                    route.describe(),
                    route.component,
                    existing.describe(),
                    existing.component
                ));
            }
            same_shape.push(route);
        }
        self.root = next;
        Ok(())
    }

    /// Removes every route of one component.
    pub fn remove(&mut self, component: &str) {
        self.root.remove(component);
    }

    /// The route for a request: among the shapes matching its path, most specific first, the
    /// first with a route for its method (or any method; `HEAD` is served by `GET`). When
    /// none has, the methods of the most specific shape are the ones allowed.
    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut allowed: Option<Vec<Method>> = None;
        let mut found = None;
        self.root.visit(&segments, &mut |routes| {
            let serves = |m: &Method| m == method || (method == Method::HEAD && m == Method::GET);
            found = routes.iter().find(|r| r.method.as_ref().is_none_or(serves));
            if found.is_none() && allowed.is_none() {
                allowed = Some(routes.iter().filter_map(|r| r.method.clone()).collect());
            }
            found.is_some()
        });
        match (found, allowed) {
            (Some(route), _) => Lookup::Found {
                component: &route.component,
                pattern: route.pattern.as_str(),
                params: route.pattern.matches(&segments).unwrap_or_default(),
            },
            (None, Some(allowed)) => Lookup::MethodNotAllowed { allowed },
            (None, None) => Lookup::NotFound,
        }
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
    fn a_pattern_reads_as_an_openapi_path_template() {
        let pattern = Pattern::parse("/api/{id}/files/{*rest}").unwrap();
        let (path, params) = pattern.template();
        assert_eq!((path.as_str(), params), ("/api/{id}/files/{rest}", vec!["id", "rest"]));
        assert_eq!(Pattern::parse("/").unwrap().template().0, "/");
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_reason() {
        assert!(Pattern::parse("api").unwrap_err().contains("must start with '/'"));
        assert!(Pattern::parse("/a/{*rest}/b").unwrap_err().contains("last segment"));
        assert!(Pattern::parse("/a/x{id}").is_err());
        assert!(Route::parse("GE{T /a", "c").unwrap_err().contains("not an HTTP method"));
    }

    #[test]
    fn an_exact_route_beats_a_rest_that_matches_nothing() {
        let r = router(&[("exact", "GET /hello"), ("prefix", "/hello/{*rest}")]);
        assert_eq!(found(&r, Method::GET, "/hello"), Some("exact"));
        assert_eq!(found(&r, Method::POST, "/hello"), Some("prefix"), "any method falls through to the rest");
        assert_eq!(found(&r, Method::GET, "/hello/x"), Some("prefix"));
    }

    #[test]
    fn a_less_specific_route_serves_a_method_the_most_specific_shape_lacks() {
        let r = router(&[("users", "GET /api/v1/users/{id}"), ("catchall", "/api/{*rest}")]);
        assert_eq!(found(&r, Method::POST, "/api/v1/users/7"), Some("catchall"));
        let r = router(&[("a", "GET /x/{id}"), ("b", "PUT /x/{*rest}")]);
        assert_eq!(r.lookup(&Method::DELETE, "/x/1"), Lookup::MethodNotAllowed { allowed: vec![Method::GET] });
    }

    #[test]
    fn a_hundred_thousand_routes_build_and_answer_without_scanning() {
        let routes: Vec<Route> =
            (0..100_000).map(|i| Route::parse(&format!("GET /r/{i}/items/{{id}}"), "many").unwrap()).collect();
        let mut r = Router::default();
        r.add(routes).unwrap();
        r.add(vec![Route::parse("GET /r/{n}/items/{id}", "fallback").unwrap()]).unwrap();
        assert_eq!(found(&r, Method::GET, "/r/99999/items/3"), Some("many"));
        assert_eq!(found(&r, Method::GET, "/r/100000/items/3"), Some("fallback"));
        let err = r.add(vec![Route::parse("GET /r/5/items/{x}", "late").unwrap()]).unwrap_err();
        assert!(err.contains("'many'"), "{err}");
        assert_eq!(found(&r, Method::GET, "/r/5/items/1"), Some("many"), "a refused batch changes nothing");
    }
}
