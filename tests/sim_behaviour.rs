//! The simulator's own HTTP behaviour, checked with a plain HTTP client, so that the client
//! tests that rely on it cannot pass for the wrong reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

mod common;

use bt_watchdog::sim::SimSettings;
use common::simulator;

async fn token(http: &reqwest::Client, base: &str) -> String {
    let answer: serde_json::Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("bt-watchdog", Some("simulated-secret"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    answer["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_client_that_keeps_connections_alive_is_caught() {
    let sim = simulator(SimSettings::default()).await;
    let pooled = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(
            pooled
                .get(format!("{}/check_health", sim.url(0)))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let counters = sim.counters(0);
    assert_eq!(counters.missing_connection_close, 3);
    assert!(counters.connections_reused >= 1, "{counters:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn methods_follow_the_documented_rules() {
    let sim = simulator(SimSettings::default()).await;
    let http = reqwest::Client::new();
    let base = sim.url(0);
    let bearer = format!("Bearer {}", token(&http, &base).await);
    let health = format!("{base}/api/command/v2/health");

    let head = http
        .head(&health)
        .header("Accept", "application/json")
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(
        head.bytes().await.unwrap().is_empty(),
        "HEAD answers carry no body"
    );

    let options = http
        .request(reqwest::Method::OPTIONS, &health)
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(options.headers()["allow"], "GET,HEAD");

    let put = http
        .put(&health)
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    assert_eq!(put.headers()["allow"], "GET,HEAD");

    let no_accept = http
        .get(&health)
        .header("Authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(no_accept.status(), 406);

    let form_body = http
        .post(format!("{base}/api/command/v2/failover-role"))
        .header("Authorization", &bearer)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("role=primary")
        .send()
        .await
        .unwrap();
    assert_eq!(form_body.status(), 415);

    let unknown_field = http
        .post(format!("{base}/api/command/v2/failover-role"))
        .header("Authorization", &bearer)
        .header("Content-Type", "application/json")
        .body(r#"{"role":"backup","now":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), 400);

    let string_flag = http
        .post(format!("{base}/api/command/v2/failover-role"))
        .header("Authorization", &bearer)
        .header("Content-Type", "application/json")
        .body(r#"{"role":"backup","force":"true"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(string_flag.status(), 422);
    let bag: serde_json::Value =
        serde_json::from_slice(&string_flag.bytes().await.unwrap()).unwrap();
    assert!(bag["errors"]["force"].is_array(), "{bag}");

    let no_token = http
        .get(&health)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let denied: serde_json::Value =
        serde_json::from_slice(&no_token.bytes().await.unwrap()).unwrap();
    assert_eq!(denied["error"], "access_denied");

    assert_eq!(
        sim.counters(0).failover_calls,
        2,
        "the two well-formed-JSON calls reached validation"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_documented_rate_limit_is_enforced_with_headers() {
    let sim = simulator(SimSettings {
        per_second_limit: 3,
        ..SimSettings::default()
    })
    .await;
    let http = reqwest::Client::new();
    let base = sim.url(0);
    let bearer = format!("Bearer {}", token(&http, &base).await);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = http
            .get(format!("{base}/api/command/v2/info"))
            .header("Accept", "application/json")
            .header("Authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert!(answer.headers().contains_key("x-ratelimit-remaining"));
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 429, 429],
        "the window slides from the first request"
    );
    sim.shutdown().await;
}
