//! The gateway's edge: policies in `trellis.toml` decide, before any component runs, who may
//! call a route (signed tokens, API keys, scopes), how often (rate limits), and from which
//! browser origins (CORS). Tokens are signed here with keys made for the test: an HS256
//! secret, an ES256 key given as PEM, and an RS256 key published in a JWKS file.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Host, Reply, send};

const SECRET: &str = "a-test-secret-of-decent-length-0123456789";
const API_KEY: &str = "tk_live_billing_5f2c9a";

/// Makes a key pair with openssl into `dir`: the private key (PKCS#8 PEM) and the public one.
fn openssl_key(dir: &Path, name: &str, algorithm: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let made = Command::new("openssl").arg("genpkey").args(algorithm).arg("-out").arg(&private).output().unwrap();
    assert!(made.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&made.stderr));
    let out = Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&private).arg("-out").arg(&public).output();
    assert!(out.unwrap().status.success());
    (std::fs::read(private).unwrap(), std::fs::read(public).unwrap())
}

/// The JWKS document of an RSA public key, under key id `kid`.
fn jwks(public_pem: &Path, kid: &str) -> Value {
    let out = Command::new("openssl").args(["rsa", "-pubin", "-modulus", "-noout", "-in"]).arg(public_pem).output();
    let text = String::from_utf8(out.unwrap().stdout).unwrap();
    let hex = text.trim().strip_prefix("Modulus=").unwrap();
    let modulus: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    json!({ "keys": [{ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(modulus), "e": URL_SAFE_NO_PAD.encode([1u8, 0, 1]) }] })
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Signs `claims` (with good defaults for what is not given) with `key` under `header`.
fn token(header: Header, key: &EncodingKey, claims: Value) -> String {
    let mut all = json!({ "iss": "https://id.example.com", "aud": "shop", "sub": "user-42",
        "scope": "shop profile", "exp": now() + 600, "iat": now() });
    all.as_object_mut().unwrap().extend(claims.as_object().unwrap().clone());
    jsonwebtoken::encode(&header, &all, key).unwrap()
}

fn hs256(claims: Value) -> String {
    token(Header::new(Algorithm::HS256), &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(), claims)
}

fn get(host: &Host, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = http::Request::builder().uri(format!("{}{path}", host.public));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request.body(Vec::new()).unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A host serving the `consumer` test component, whose `/consumer/whoami/...` answers with the
/// identity headers the host set, behind `policies`. Its public keys are `keys/ec.pem` (the
/// ES256 key) or `keys/jwks.json` (the RS256 key, as key id `rsa-1`), as `keys` says.
fn host_with(policies: &str, keys: &str) -> (Host, EncodingKey, EncodingKey) {
    let dir = tempfile::tempdir().unwrap();
    let (ec_private, _) = openssl_key(dir.path(), "ec", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let (rsa_private, _) = openssl_key(dir.path(), "rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::rename(dir.path().join("ec.pub.pem"), dir.path().join("keys/ec.pem")).unwrap();
    let set = jwks(&dir.path().join("rsa.pub.pem"), "rsa-1");
    std::fs::write(dir.path().join("keys/jwks.json"), set.to_string()).unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::copy(support::component("testing/consumer"), components.join("consumer.wasm")).unwrap();
    let config = format!(
        r#"
        [auth.jwt]
        issuer = "https://id.example.com"
        audience = "shop"
        algorithms = ["HS256", "RS256", "ES256"]
        hs256_secret_env = "TEST_JWT_SECRET"
        public_keys = "{keys}"
        leeway_seconds = 30

        [[auth.api_keys]]
        name = "billing-batch"
        sha256 = "{:x}"
        scopes = ["shop"]
        {policies}
        "#,
        Sha256::digest(API_KEY)
    );
    std::fs::write(dir.path().join("trellis.toml"), config).unwrap();
    let mut host = Host::launch_with_env(dir, &[], &[("TEST_JWT_SECRET", SECRET)]);
    host.wait_until_loaded();
    (host, EncodingKey::from_ec_pem(&ec_private).unwrap(), EncodingKey::from_rsa_pem(&rsa_private).unwrap())
}

#[test]
fn tokens_decide_who_reaches_a_route_and_the_component_sees_the_subject_the_host_vouches_for() {
    let policies = r#"
        [[policies]]
        name = "profile"
        routes = ["/consumer/whoami"]
        auth = "jwt"
        scopes = ["shop"]
    "#;
    let (host, ec, _) = host_with(policies, "keys/ec.pem");

    let none = get(&host, "/consumer/whoami", &[]);
    assert_eq!((none.status, none.error_code()), (401, "unauthenticated".to_string()), "{}", none.body);
    assert_eq!(none.header("www-authenticate"), Some("Bearer realm=\"trellis\""));

    let forged = token(Header::new(Algorithm::HS256), &EncodingKey::from_secret(b"not-the-secret").unwrap(), json!({}));
    let bad = get(&host, "/consumer/whoami", &[("authorization", &bearer(&forged))]);
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(bad.header("www-authenticate").unwrap().contains("error=\"invalid_token\""), "{:?}", bad.headers);
    assert!(bad.body.contains("signature"), "{}", bad.body);

    let expired = get(&host, "/consumer/whoami", &[("authorization", &bearer(&hs256(json!({"exp": now() - 120}))))]);
    assert_eq!(expired.status, 401);
    assert!(expired.body.contains("expired"), "{}", expired.body);
    let within_leeway = hs256(json!({"exp": now() - 5}));
    assert_eq!(get(&host, "/consumer/whoami", &[("authorization", &bearer(&within_leeway))]).status, 200);
    let early = get(&host, "/consumer/whoami", &[("authorization", &bearer(&hs256(json!({"nbf": now() + 600}))))]);
    assert_eq!(early.status, 401, "not valid before a time still to come");
    let stranger = hs256(json!({"iss": "https://evil.example.com"}));
    assert_eq!(get(&host, "/consumer/whoami", &[("authorization", &bearer(&stranger))]).status, 401);
    let elsewhere = hs256(json!({"aud": "billing"}));
    assert_eq!(get(&host, "/consumer/whoami", &[("authorization", &bearer(&elsewhere))]).status, 401);

    let narrow = get(&host, "/consumer/whoami", &[("authorization", &bearer(&hs256(json!({"scope": "profile"}))))]);
    assert_eq!((narrow.status, narrow.error_code()), (403, "insufficient_scope".to_string()));
    assert!(narrow.header("www-authenticate").unwrap().contains("scope=\"shop\""));

    let valid = hs256(json!({}));
    let spoofing = [
        ("authorization", bearer(&valid)),
        ("x-trellis-subject", "admin".into()),
        ("x-trellis-auth", "api-key".into()),
    ];
    let spoofing: Vec<(&str, &str)> = spoofing.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let me = get(&host, "/consumer/whoami", &spoofing);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json(), json!({"subject": "user-42", "scopes": "shop profile", "auth": "jwt"}));

    let accented = hs256(json!({"sub": "josé"}));
    let me = get(&host, "/consumer/whoami", &[("authorization", &bearer(&accented))]);
    assert_eq!(
        (me.status, me.json()["subject"].clone()),
        (200, json!("josé")),
        "a subject reaches the component as sent"
    );
    let forged_line = hs256(json!({"sub": "ada\r\nx-trellis-auth: api-key"}));
    assert_eq!(get(&host, "/consumer/whoami", &[("authorization", &bearer(&forged_line))]).status, 401);

    let mut es = Header::new(Algorithm::ES256);
    es.kid = Some("whatever".into());
    let es = token(es, &ec, json!({"sub": "ec-user", "scope": null, "scp": ["shop"]}));
    let me = get(&host, "/consumer/whoami", &[("authorization", &bearer(&es))]);
    assert_eq!((me.status, me.json()["subject"].clone()), (200, json!("ec-user")), "{}", me.body);

    let open = get(&host, "/consumer/whoami/open", &[("x-trellis-subject", "admin"), ("x-trellis-scopes", "root")]);
    assert_eq!(open.status, 200, "a route no policy covers is open");
    assert_eq!(
        open.json(),
        json!({"subject": null, "scopes": null, "auth": null}),
        "a client's identity headers never arrive"
    );

    let metrics = host.get("/metrics").body;
    let line = |reason: &str| format!("trellis_http_refused_total{{policy=\"profile\",reason=\"{reason}\"}}");
    assert!(metrics.contains(&format!("{} 7", line("unauthenticated"))), "{metrics}");
    assert!(metrics.contains(&format!("{} 1", line("forbidden"))), "{metrics}");
}

#[test]
fn an_rs256_token_is_checked_against_the_jwks_key_its_kid_names() {
    let policy = "[[policies]]\nroutes = [\"/consumer/whoami\"]\nauth = \"jwt\"\n";
    let (host, _, rsa) = host_with(policy, "keys/jwks.json");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let signed = token(header.clone(), &rsa, json!({"sub": "rsa-user"}));
    let me = get(&host, "/consumer/whoami", &[("authorization", &bearer(&signed))]);
    assert_eq!((me.status, me.json()["subject"].clone()), (200, json!("rsa-user")), "{}", me.body);
    header.kid = Some("rsa-2".into());
    let unknown = token(header, &rsa, json!({}));
    assert_eq!(get(&host, "/consumer/whoami", &[("authorization", &bearer(&unknown))]).status, 401, "no such key id");
}

#[test]
fn api_keys_are_accepted_by_hash_and_a_burst_over_the_limit_waits_its_turn() {
    let (host, _, _) = host_with(
        r#"
        [[policies]]
        name = "batch"
        routes = ["/consumer/whoami/{*rest}"]
        auth = "jwt-or-api-key"
        rate_limit = { per = "api-key", requests = 1, per_seconds = 2, burst = 3 }
        "#,
        "keys/ec.pem",
    );
    let by_header = get(&host, "/consumer/whoami/batch", &[("x-api-key", API_KEY)]);
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    assert_eq!(by_header.json(), json!({"subject": "billing-batch", "scopes": "shop", "auth": "api-key"}));
    assert_eq!(by_header.header("ratelimit-policy"), Some("\"batch\";q=1;w=2"));
    let by_bearer = get(&host, "/consumer/whoami/batch", &[("authorization", &bearer(API_KEY))]);
    assert_eq!(by_bearer.status, 200, "{}", by_bearer.body);
    let wrong = get(&host, "/consumer/whoami/batch", &[("x-api-key", "tk_live_guess")]);
    assert_eq!((wrong.status, wrong.error_code()), (401, "unauthenticated".to_string()));

    let third = get(&host, "/consumer/whoami/batch", &[("x-api-key", API_KEY)]);
    assert_eq!(third.status, 200, "the burst allows three");
    assert!(third.header("ratelimit").unwrap().starts_with("\"batch\";r=0;"), "{:?}", third.headers);
    let over = get(&host, "/consumer/whoami/batch", &[("x-api-key", API_KEY)]);
    assert_eq!((over.status, over.error_code()), (429, "rate_limited".to_string()), "{}", over.body);
    let wait: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "one token comes back every 2 s: {wait}");
    assert!(over.header("ratelimit").is_some() && over.header("ratelimit-policy").is_some());
    let someone_else = get(&host, "/consumer/whoami/batch", &[("authorization", &bearer(&hs256(json!({}))))]);
    assert_eq!(someone_else.status, 200, "a token's holder has a bucket of its own");

    std::thread::sleep(Duration::from_secs(wait));
    let again = get(&host, "/consumer/whoami/batch", &[("x-api-key", API_KEY)]);
    assert_eq!(again.status, 200, "after Retry-After: {}", again.body);
    let metrics = host.get("/metrics").body;
    assert!(metrics.contains("trellis_http_refused_total{policy=\"batch\",reason=\"rate-limited\"} 1"), "{metrics}");

    // Guessing keys draws from the address's bucket: guesses run out like any requests.
    let guesses: Vec<u16> =
        (0..6).map(|i| get(&host, "/consumer/whoami/batch", &[("x-api-key", &format!("guess-{i}"))]).status).collect();
    assert!(guesses.starts_with(&[401]) && guesses.ends_with(&[429, 429]), "{guesses:?}");
}

#[test]
fn the_host_answers_cors_preflights_per_policy() {
    let (host, _, _) = host_with(
        r#"
        [[policies]]
        name = "shop-web"
        components = ["consumer"]
        auth = "jwt"
        cors = { origins = ["https://shop.example.com"], methods = ["GET", "POST"], headers = ["authorization"] }
        "#,
        "keys/ec.pem",
    );
    let preflight = |origin: &str, method: &str, headers: &str| {
        let request = http::Request::builder()
            .method("OPTIONS")
            .uri(format!("{}/consumer/whoami", host.public))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", headers);
        send(request.body(Vec::new()).unwrap())
    };
    let allowed = preflight("https://shop.example.com", "GET", "Authorization");
    assert_eq!(allowed.status, 204, "{}", allowed.body);
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://shop.example.com"));
    assert_eq!(allowed.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(allowed.header("access-control-allow-headers"), Some("authorization"));
    assert_eq!(allowed.header("access-control-max-age"), Some("600"));
    assert_eq!(preflight("https://evil.example.com", "GET", "authorization").status, 403);
    assert_eq!(preflight("https://shop.example.com", "DELETE", "authorization").status, 403);
    assert_eq!(preflight("https://shop.example.com", "GET", "x-admin").status, 403);

    let origin = ("origin", "https://shop.example.com");
    let refused = get(&host, "/consumer/whoami", &[origin]);
    assert_eq!(refused.status, 401, "a preflight needs no token, the request itself does");
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some("https://shop.example.com"),
        "so the page can read why"
    );
    let token = bearer(&hs256(json!({})));
    let served = get(&host, "/consumer/whoami", &[origin, ("authorization", &token)]);
    assert_eq!(served.status, 200);
    assert_eq!(served.header("access-control-allow-origin"), Some("https://shop.example.com"));
    let foreign = get(&host, "/consumer/whoami", &[("origin", "https://evil.example.com"), ("authorization", &token)]);
    assert_eq!(foreign.header("access-control-allow-origin"), None);
}

#[test]
fn a_policy_that_cannot_be_checked_stops_the_start_naming_what_is_missing() {
    let start = |config: &str, env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("components")).unwrap();
        std::fs::write(dir.path().join("trellis.toml"), config).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--components"])
            .arg(dir.path().join("components"))
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(dir.path().join("trellis.toml"))
            .env_remove("TEST_JWT_SECRET")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "the host must not start");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let no_jwt = start("[[policies]]\nname = \"orders\"\nroutes = [\"/api/v1/orders\"]\nauth = \"jwt\"\n", &[]);
    assert!(no_jwt.contains("\"orders\"") && no_jwt.contains("[auth.jwt]"), "{no_jwt}");
    let no_secret = start("[auth.jwt]\nalgorithms = [\"HS256\"]\nhs256_secret_env = \"TEST_JWT_SECRET\"\n", &[]);
    assert!(no_secret.contains("TEST_JWT_SECRET"), "{no_secret}");
    let secret_in_file = start("[auth.jwt]\nalgorithms = [\"HS256\"]\nhs256_secret = \"x\"\n", &[]);
    assert!(secret_in_file.contains("hs256_secret"), "{secret_in_file}");
    let no_keys = start("[auth.jwt]\nalgorithms = [\"RS256\"]\npublic_keys = \"missing.pem\"\n", &[]);
    assert!(no_keys.contains("missing.pem"), "{no_keys}");
    let bad_limit = start("[[policies]]\nroutes = [\"/a\"]\nrate_limit = { per = \"ip\", requests = 0 }\n", &[]);
    assert!(bad_limit.contains("requests"), "{bad_limit}");
}
