//! What the edge's policies cost a request (`make bench-edge`, also in `make bench`):
//! `GET /api/v1/users/1` from the user service at 16 connections (wrk), on a host with no
//! policy, and on a host whose policy on that route asks for a token or an API key and
//! limits each client (a limit far above the load, so every request takes a token from its
//! bucket and passes). The guarded host is sent an HS256, an ES256 and an RS256 token (keys
//! made here with openssl) and an API key, in turn. Rounds alternate; medians. Writes
//! `bench/results/EDGE.md`.

#[allow(dead_code)]
#[path = "systems.rs"]
mod systems;
#[allow(dead_code)]
#[path = "wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const ROUNDS: usize = 3;
const RUN: Duration = Duration::from_secs(5);
const CONNECTIONS: u32 = 16;
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";
const API_KEY: &str = "bench-api-key";
/// The SHA-256 of [`API_KEY`].
const API_KEY_SHA256: &str = "fd0ba226dc24b08a5c55782e91ba91ba5528bb35f37f7d322b35d703efb77822";

/// Makes a key pair with openssl: the private key (PKCS#8 PEM) and the public one (PEM).
fn key_pair(dir: &Path, name: &str, algorithm: &[&str]) -> anyhow::Result<(Vec<u8>, String)> {
    let private = dir.join(format!("{name}.pem"));
    let made = Command::new("openssl").arg("genpkey").args(algorithm).arg("-out").arg(&private).output()?;
    anyhow::ensure!(made.status.success(), "openssl genpkey failed");
    let public = Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&private).output()?;
    Ok((std::fs::read(&private)?, String::from_utf8(public.stdout)?))
}

fn token(algorithm: Algorithm, key: &EncodingKey) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({ "sub": "bench", "scope": "shop", "iss": "bench", "exp": now + 3600 });
    Ok(jsonwebtoken::encode(&Header::new(algorithm), &claims, key)?)
}

/// A wrk script sending `header` with every request.
fn script(dir: &Path, name: &str, header: Option<(&str, &str)>) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("{name}.lua"));
    let text = match header {
        Some((name, value)) => format!("wrk.headers[\"{name}\"] = \"{value}\"\n"),
        None => String::new(),
    };
    std::fs::write(&path, text)?;
    Ok(path)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = tempfile::tempdir()?;
    let dir = work.path();
    let (ec_private, ec_public) = key_pair(dir, "ec", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])?;
    let (rsa_private, rsa_public) = key_pair(dir, "rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])?;
    std::fs::write(dir.join("public.pem"), format!("{ec_public}{rsa_public}"))?;
    let config = format!(
        r#"
        [auth.jwt]
        issuer = "bench"
        algorithms = ["HS256", "ES256", "RS256"]
        hs256_secret_env = "TRELLIS_BENCH_JWT_SECRET"
        public_keys = "public.pem"

        [[auth.api_keys]]
        name = "bench"
        sha256 = "{API_KEY_SHA256}"

        [[policies]]
        routes = ["/api/v1/users/{{id}}"]
        auth = "jwt-or-api-key"
        rate_limit = {{ per = "subject", requests = 1000000 }}
        "#
    );
    std::fs::write(dir.join("guarded.toml"), config)?;
    // SAFETY: set before this process starts a thread; the hosts it starts inherit it.
    unsafe { std::env::set_var("TRELLIS_BENCH_JWT_SECRET", SECRET) };

    let open = systems::trellis_shop(&root, &root.join("dist"), &["user-service"], &dir.join("open"))?;
    let guarded_components = dir.join("guarded/components");
    std::fs::create_dir_all(&guarded_components)?;
    std::fs::copy(root.join("dist/user-service.wasm"), guarded_components.join("user-service.wasm"))?;
    let bin = root.join("target/release/trellis");
    let guarded =
        systems::trellis(&bin, &guarded_components, &dir.join("guarded/data"), Some(&dir.join("guarded.toml")))?;
    for server in [&open, &guarded] {
        let status = systems::status(
            "POST",
            &format!("{}/api/v1/users", server.base),
            Some(r#"{"name":"Ada","email":"ada@example.com"}"#),
        );
        anyhow::ensure!(status == Some(201), "could not create the user: {status:?}");
    }

    let bearer = |t: String| format!("Bearer {t}");
    let variants = [
        ("no policy", open.base.clone(), script(dir, "open", None)?),
        (
            "HS256 token",
            guarded.base.clone(),
            script(
                dir,
                "hs256",
                Some((
                    "Authorization",
                    &bearer(token(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes())?)?),
                )),
            )?,
        ),
        (
            "ES256 token",
            guarded.base.clone(),
            script(
                dir,
                "es256",
                Some(("Authorization", &bearer(token(Algorithm::ES256, &EncodingKey::from_ec_pem(&ec_private)?)?))),
            )?,
        ),
        (
            "RS256 token",
            guarded.base.clone(),
            script(
                dir,
                "rs256",
                Some(("Authorization", &bearer(token(Algorithm::RS256, &EncodingKey::from_rsa_pem(&rsa_private)?)?))),
            )?,
        ),
        ("API key", guarded.base.clone(), script(dir, "key", Some(("X-API-Key", API_KEY)))?),
    ];
    let mut results: Vec<Vec<wrk::Load>> = vec![Vec::new(); variants.len()];
    for round in 0..ROUNDS {
        for (i, (name, base, script)) in variants.iter().enumerate() {
            let load = wrk::run(&format!("{base}/api/v1/users/1"), CONNECTIONS, RUN, Some(script))?;
            anyhow::ensure!(load.failures == 0, "{name}: {} failed requests", load.failures);
            println!(
                "round {}: {name}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms",
                round + 1,
                load.rps,
                load.p50_ms,
                load.p99_ms
            );
            results[i].push(load);
        }
    }

    let mut report = String::from(
        "# The edge's policies: what a check costs\n\nGenerated by `make bench-edge` (`./target/release/edge`). \
         `GET /api/v1/users/1` (the user service), wrk with 16 connections, 5 s runs, 3 alternated rounds, medians. \
         The guarded host's policy on the route: `auth = \"jwt-or-api-key\"` with a per-subject rate limit far above \
         the load. Same machine, same run.\n\n| credentials | req/s | p50 ms | p99 ms | req/s against no policy |\n|---|---|---|---|---|\n",
    );
    let base = median(results[0].iter().map(|l| l.rps).collect());
    for ((name, _, _), loads) in variants.iter().zip(&results) {
        let rps = median(loads.iter().map(|l| l.rps).collect());
        let p50 = median(loads.iter().map(|l| l.p50_ms).collect());
        let p99 = median(loads.iter().map(|l| l.p99_ms).collect());
        writeln!(report, "| {name} | {rps:.0} | {p50:.3} | {p99:.3} | {:.2}x |", rps / base)?;
    }
    std::fs::write(root.join("bench/results/EDGE.md"), &report)?;
    println!("\n{report}");
    Ok(())
}
