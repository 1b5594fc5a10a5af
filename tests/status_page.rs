//! What an operator sees: the status page in a real browser (Debian's headless Chromium,
//! driven over WebDriver) follows a failover of the simulated pair without a reload; and the
//! alerts' runbook links, as `bt-watchdog alerts` generates them, open a section of the
//! runbook the daemon serves, behind the same basic auth as `/status`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may fail loudly

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::Browser;
use bt_watchdog::sim::SimSettings;
use common::simulator;
use common::watchdog::{SECRET, Watchdog, Workspace, config_toml, site_toml};

const LONG: Duration = Duration::from_secs(30);

/// Where the screenshots go: a test artifact under `target/`.
fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page")
}

/// The state the page shows for site hq, from its badge (a `data-state` attribute next to
/// the words), and its reason in words.
const SITE_STATE: &str = r#"
const card = document.querySelector('[data-site="hq"]');
if (!card) return null;
const badge = card.querySelector('[data-state]');
const reason = card.querySelector('[data-field="reason"]');
const roles = {};
card.querySelectorAll('tr[data-appliance]').forEach(r => {
  roles[r.getAttribute('data-appliance')] = r.querySelector('[data-field="role"]').textContent;
});
const cooldown = card.querySelector('[data-field="cooldown"]');
return {
  state: badge && badge.getAttribute('data-state'),
  words: badge && badge.textContent.trim(),
  reason: reason && reason.textContent,
  roles: roles,
  cooldown: cooldown && cooldown.textContent,
  decisions: Array.from(card.querySelectorAll('.decisions li')).map(li => li.textContent),
  timeline: (card.querySelector('svg title') || {}).textContent || null,
  loadedOnce: window.__loadedOnce === 'this document',
  navigations: performance.getEntriesByType('navigation').length,
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_follows_a_failover_live_in_a_real_browser() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    // A streak long enough for a person (and the test) to see it on the page.
    let (config, _) = ws.single_site_config("auto", &sim, "failover_after = \"6s\"");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;

    let browser = Browser::start(1200, 1000).await;
    browser.goto(&format!("{}/", watchdog.base)).await;
    // A mark on this document: a reload would lose it.
    browser
        .eval("window.__loadedOnce = 'this document'; return true;")
        .await;
    let dir = artifacts();
    let healthy = browser
        .wait_for(LONG, "the healthy pair", SITE_STATE, |v| {
            v["state"] == "healthy"
        })
        .await;
    assert_eq!(healthy["words"], "✓ Healthy", "{healthy}");
    assert_eq!(healthy["roles"]["east"], "primary", "{healthy}");
    assert_eq!(healthy["roles"]["west"], "backup", "{healthy}");
    // The page says it is live (the script runs under the Content-Security-Policy).
    let live = browser
        .eval("return document.getElementById('live').textContent")
        .await;
    assert!(live.as_str().unwrap().starts_with("Live:"), "{live}");
    browser.screenshot(&dir.join("1-healthy.png")).await;

    // The primary dies, through the simulator's fault API.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = browser::json_of(
        http.post(format!("{}/sim/appliances/east/faults", sim.control_url())),
        &serde_json::json!({"down": true}),
    )
    .await;
    assert_eq!(answer["faults"]["down"], true, "{answer}");

    let streak = browser
        .wait_for(LONG, "the failing streak", SITE_STATE, |v| {
            v["state"] == "primary_suspect"
                && v["reason"].as_str().is_some_and(|r| {
                    r.contains("primary east not answering") && r.contains("polls")
                })
        })
        .await;
    assert_eq!(streak["words"], "▲ Primary failing", "{streak}");
    browser.screenshot(&dir.join("2-failing-streak.png")).await;

    let failover = browser
        .wait_for(LONG, "the failover", SITE_STATE, |v| {
            v["state"] == "failing_over"
                || v["decisions"].as_array().is_some_and(|d| {
                    d.iter().any(|d| {
                        d.as_str()
                            .unwrap_or_default()
                            .contains("failover to west done")
                    })
                })
        })
        .await;
    browser.screenshot(&dir.join("3-failover.png")).await;

    let cooldown = browser
        .wait_for(LONG, "the cooldown", SITE_STATE, |v| {
            v["state"] == "cooldown" && v["roles"]["west"] == "primary"
        })
        .await;
    assert_eq!(cooldown["words"], "◷ Cooldown", "{cooldown}");
    assert!(
        cooldown["cooldown"].as_str().unwrap().ends_with(" left"),
        "{cooldown}"
    );
    // The old primary is dead and its peer answers as primary: its old role is not
    // current, so the page does not call it primary.
    assert_eq!(
        cooldown["roles"]["east"], "unknown (not answering)",
        "{cooldown}"
    );
    assert!(
        cooldown["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().contains("failover to west done")),
        "{cooldown}"
    );
    // The timeline tells the same story in words.
    let timeline = cooldown["timeline"].as_str().unwrap();
    assert!(
        timeline.contains("Healthy")
            && timeline.contains("Primary failing")
            && timeline.ends_with("Cooldown"),
        "{timeline}"
    );
    browser.screenshot(&dir.join("4-cooldown.png")).await;

    // All of it without a reload: the same document, one navigation.
    assert_eq!(
        cooldown["loadedOnce"], true,
        "the page was reloaded: {cooldown}"
    );
    assert_eq!(cooldown["navigations"], 1, "{cooldown}");
    let _ = failover;

    // The filter box narrows the sites without a reload too.
    browser
        .eval("const q = document.getElementById('q'); q.value = 'no-such-site'; q.dispatchEvent(new Event('input')); return true;")
        .await;
    browser
        .wait_for(
            LONG,
            "the filter to hide the site",
            "return document.getElementById('sites').textContent",
            |v| {
                v.as_str()
                    .is_some_and(|t| t.contains("No site matches the filter."))
            },
        )
        .await;
    sim.shutdown().await;
}

/// Without JavaScript the page is complete as served: the site, its state in words, and the
/// filter as a plain form; and it carries no external reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_whole_without_javascript_and_refers_to_nothing_outside() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let (config, _) = ws.single_site_config("observe", &sim, "");
    let watchdog = Watchdog::start(&config, &ws.path("watchdog.log"), "info");
    watchdog
        .wait_for_site(LONG, "a healthy pair", |s| s["state"] == "healthy")
        .await;
    let (status, page) = watchdog.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"data-site="hq""#), "{page}");
    assert!(page.contains("Healthy"));
    assert!(page.contains(r#"<form id="filter" role="search" method="get""#));
    assert!(page.contains(r#"<noscript><meta http-equiv="refresh""#));
    for outside in ["src=\"http", "href=\"http", "@import", "url("] {
        assert!(
            !page.contains(outside),
            "the page refers to something outside: {outside}"
        );
    }
    let (_, filtered) = watchdog.get("/?q=elsewhere").await;
    assert!(filtered.contains("No site matches the filter."));
    let (_, partial) = watchdog.get("/?partial=1").await;
    assert!(partial.starts_with(r#"<p id="summary""#), "{partial}");
    sim.shutdown().await;
}

/// Every alert's runbook link, generated with the daemon's own `/runbook` as its base, opens
/// a page that has the alert's anchor; the page and the status page need the same basic auth
/// as `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_links_to_its_section_of_the_served_runbook() {
    let sim = simulator(SimSettings::default()).await;
    let ws = Workspace::new();
    let secret = ws.write_secret(SECRET);
    let hash = bcrypt::hash("oncall-password", 4).unwrap();
    std::fs::write(
        ws.path("web.toml"),
        format!("[basic_auth_users]\noncall = \"{hash}\"\n"),
    )
    .unwrap();
    let config = config_toml(
        "observe",
        &ws.path("state"),
        &site_toml("hq", &sim, &secret, ""),
    )
    .replace(
        "listen = \"127.0.0.1:0\"",
        &format!(
            "listen = \"127.0.0.1:0\"\nweb_config = \"{}\"",
            ws.path("web.toml").display()
        ),
    );
    std::fs::write(ws.path("config.toml"), config).unwrap();
    let watchdog = Watchdog::start(&ws.path("config.toml"), &ws.path("watchdog.log"), "info");

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for path in ["/", "/runbook", "/status"] {
        let url = format!("{}{path}", watchdog.base);
        let anonymous = http.get(&url).send().await.unwrap().status().as_u16();
        assert_eq!(anonymous, 401, "{path} without credentials");
        let authorized = http
            .get(&url)
            .basic_auth("oncall", Some("oncall-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(authorized.status().as_u16(), 200, "{path} with credentials");
    }

    let output = std::process::Command::new(common::watchdog::BINARY)
        .args(["alerts", "--runbook-base"])
        .arg(format!("{}/runbook", watchdog.base))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rules = String::from_utf8(output.stdout).unwrap();
    let mut checked = 0;
    for url in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
    {
        let (page, anchor) = url.split_once('#').expect("an anchor in every runbook_url");
        let answer = http
            .get(page)
            .basic_auth("oncall", Some("oncall-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{url}");
        let body = answer.text().await.unwrap();
        assert!(
            body.contains(&format!(r#"id="{anchor}""#)),
            "{url}: the served runbook has no such anchor"
        );
        checked += 1;
    }
    assert!(checked >= 16, "only {checked} runbook links");
    sim.shutdown().await;
}
