//! The status page on the exporter's `/`: one card per site, rendered on the server from the
//! same [`StatusDoc`] as `/status`, so it reads the same with or without JavaScript.
//!
//! - **Live:** a small inline script fetches `/?partial=1` (the same renderer, only the sites)
//!   every second or few and swaps it in, without a reload; without JavaScript, a
//!   `<noscript>` meta refresh reloads the whole page instead.
//! - **Self-contained:** no external asset (the watchdog often runs on an isolated management
//!   network); the style and the script are inline and pinned by their hashes in the
//!   Content-Security-Policy, which allows nothing else.
//! - **At 1,000 pairs:** sites that need attention come first as full cards; once more than
//!   [`FULL_CARDS`] sites match, healthy ones are one table row each. The filter box (a plain
//!   GET form, filtered on the server) narrows by site, appliance, state or reason.
//! - **Accessible:** headings per section and site, tables with header cells, every state
//!   written in words with a symbol (colour only repeats it), contrast above WCAG AA.
//!
//! The timeline is drawn from [`TimelineEvent`]s. Today they come from the engine's last
//! decisions (it keeps 20, each with the state it led to); a persistent decision journal can
//! feed the same function with hours of events instead, without changing the drawing.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;

use super::status::{DecisionStatus, SiteStatus, StatusDoc};
use crate::api::time::UtcTime;

/// Above this many matching sites, healthy ones are listed as table rows, not cards.
pub const FULL_CARDS: usize = 30;
/// At most this many cards of sites needing attention; the rest are rows too.
const MAX_PROBLEM_CARDS: usize = 100;
/// The decisions shown open on a card; the rest are behind a disclosure.
const DECISIONS_SHOWN: usize = 5;

/// What the page was asked for, from the query string.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PageQuery {
    /// Case-insensitive words that every shown site matches.
    pub filter: String,
    /// Only the sites (for the script's refresh), not the whole document.
    pub partial: bool,
}

impl PageQuery {
    pub fn parse(query: Option<&str>) -> PageQuery {
        let mut parsed = PageQuery::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                // Bounded: a filter is a few words, not a payload.
                "q" => parsed.filter = value.chars().take(200).collect(),
                "partial" => parsed.partial = value == "1",
                _ => {}
            }
        }
        parsed
    }
}

/// How serious a state is, and how it is written: the page never carries meaning by colour
/// alone, so each state has words and a symbol, and the colour class only repeats them.
struct Look {
    rank: u8,
    words: &'static str,
    symbol: &'static str,
    class: &'static str,
}

fn look(state: &str) -> Look {
    let (rank, words, symbol, class) = match state {
        "split_brain" => (0, "Split brain", "✖", "crit"),
        "no_primary" => (0, "No primary", "✖", "crit"),
        "failover_blocked" => (0, "Failover blocked", "✖", "crit"),
        "blind" => (0, "Blind", "✖", "crit"),
        "failing_over" => (0, "Failing over", "⇄", "crit"),
        "primary_suspect" => (1, "Primary failing", "▲", "warn"),
        "degraded" => (1, "Degraded", "▲", "warn"),
        "not_in_failover" => (1, "Not in failover", "▲", "warn"),
        "paused" => (1, "Paused", "‖", "warn"),
        "cooldown" => (2, "Cooldown", "◷", "info"),
        "starting" => (2, "Starting", "…", "info"),
        "healthy" => (3, "Healthy", "✓", "ok"),
        _ => (1, "Unknown state", "?", "warn"),
    };
    Look {
        rank,
        words,
        symbol,
        class,
    }
}

/// A site's place in the page: the worst of its state and its alerts.
fn rank(site: &SiteStatus) -> u8 {
    let by_state = look(&site.state).rank;
    // A cooldown with a dead old primary is still a pair without a backup.
    let appliance_down = site.appliances.iter().any(|a| !a.up || !a.healthy);
    if site.alerts.is_empty() && site.pause.is_none() && !appliance_down {
        by_state
    } else {
        by_state.min(1)
    }
}

fn needs_attention(site: &SiteStatus) -> bool {
    rank(site) < 2
}

fn matches(site: &SiteStatus, words: &[String]) -> bool {
    if words.is_empty() {
        return true;
    }
    let mut haystack = format!(
        "{} {} {} {} {}",
        site.site,
        site.state,
        look(&site.state).words,
        site.reason,
        site.mode
    );
    for appliance in &site.appliances {
        let _ = write!(
            haystack,
            " {} {} {}",
            appliance.name,
            appliance.hostname.as_deref().unwrap_or_default(),
            appliance.url
        );
    }
    let haystack = haystack.to_lowercase();
    words.iter().all(|w| haystack.contains(w.as_str()))
}

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `9m 12s`, `2h 5m`, `41s`.
fn span(seconds: f64) -> String {
    let secs = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (d, h, m, s) = (
        secs / 86_400,
        (secs % 86_400) / 3600,
        (secs % 3600) / 60,
        secs % 60,
    );
    match (d, h, m, s) {
        (0, 0, 0, s) => format!("{s}s"),
        (0, 0, m, 0) => format!("{m}m"),
        (0, 0, m, s) => format!("{m}m {s}s"),
        (0, h, 0, _) => format!("{h}h"),
        (0, h, m, _) => format!("{h}h {m}m"),
        (d, h, _, _) => format!("{d}d {h}h"),
    }
}

/// The part of a date-time an operator reads: `06:37:32 UTC` (and the date when not today).
fn clock(at: &str, now: SystemTime) -> String {
    match UtcTime::parse(at) {
        Ok(time) => {
            let text = time.to_string();
            let today = UtcTime::from_system_time(now).to_string();
            let (date, rest) = text.split_once('T').unwrap_or((&text, ""));
            let hms: String = rest.chars().take(8).collect();
            if today.starts_with(date) {
                format!("{hms} UTC")
            } else {
                format!("{date} {hms} UTC")
            }
        }
        Err(_) => at.to_string(),
    }
}

/// The whole page (or only its sites, for `partial`).
pub fn render(doc: &StatusDoc, query: &PageQuery, now: SystemTime) -> String {
    let sites = render_sites(doc, query, now);
    if query.partial {
        return sites;
    }
    let refresh_ms = if doc.sites.len() > FULL_CARDS {
        5000
    } else {
        1000
    };
    let mut out = String::with_capacity(sites.len() + 8192);
    let _ = write!(
        out,
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bt-watchdog status</title>
<noscript><meta http-equiv="refresh" content="10"></noscript>
<style>{STYLE}</style></head>
<body data-refresh-ms="{refresh_ms}">
<a class="skip" href="#sites">Skip to the sites</a>
<header><h1>bt-watchdog <small>v{version}</small></h1>
<nav aria-label="Other views"><a href="status">/status (JSON)</a> · <a href="metrics">/metrics</a> · <a href="healthz">/healthz</a> · <a href="runbook">Runbook</a></nav>
</header>
<form id="filter" role="search" method="get" action="">
<label for="q">Filter sites</label>
<input id="q" name="q" type="search" value="{filter}" placeholder="site, appliance, state or reason" autocomplete="off">
<button type="submit">Filter</button>
<span id="live" role="status" aria-live="polite">Refreshed with the page (every 10 s without JavaScript).</span>
</form>
<main id="sites">{sites}</main>
<footer><p>Every answer comes from the watchdog's memory; nothing here calls an appliance. The same data as JSON: <a href="status">/status</a>.</p></footer>
<script>{SCRIPT}</script>
</body></html>
"##,
        version = escape(&doc.version),
        filter = escape(&query.filter),
    );
    out
}

fn render_sites(doc: &StatusDoc, query: &PageQuery, now: SystemTime) -> String {
    let words: Vec<String> = query
        .filter
        .to_lowercase()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut shown: Vec<&SiteStatus> = doc.sites.iter().filter(|s| matches(s, &words)).collect();
    // Problems first, worst first; then by name (the board's order).
    shown.sort_by_key(|s| rank(s));
    let problems = shown.iter().filter(|s| needs_attention(s)).count();
    let compact = shown.len() > FULL_CARDS;

    let mut out = String::with_capacity(shown.len() * if compact { 400 } else { 4000 });
    let _ = write!(
        out,
        r#"<p id="summary" data-generated="{generated}">{total} site{s} · <strong>{problems} need{ns} attention</strong>{filtered} · as of {at}</p>"#,
        generated = escape(&UtcTime::from_system_time(now).to_string()),
        total = doc.sites.len(),
        s = if doc.sites.len() == 1 { "" } else { "s" },
        ns = if problems == 1 { "s" } else { "" },
        filtered = if words.is_empty() {
            String::new()
        } else {
            format!(" · {} match “{}”", shown.len(), escape(&query.filter))
        },
        at = escape(&clock(&UtcTime::from_system_time(now).to_string(), now)),
    );
    if doc.sites.is_empty() {
        out.push_str("<p>No site loop has reported yet.</p>");
        return out;
    }
    if shown.is_empty() {
        out.push_str("<p>No site matches the filter.</p>");
        return out;
    }
    let (attention, fine): (Vec<&SiteStatus>, Vec<&SiteStatus>) =
        shown.iter().partition(|s| needs_attention(s));
    if !attention.is_empty() {
        out.push_str(
            r#"<section aria-labelledby="h-attention"><h2 id="h-attention">Needs attention</h2>"#,
        );
        for site in attention.iter().take(MAX_PROBLEM_CARDS) {
            card(&mut out, site, now);
        }
        if attention.len() > MAX_PROBLEM_CARDS {
            rows(
                &mut out,
                &attention[MAX_PROBLEM_CARDS..],
                "More sites needing attention",
            );
        }
        out.push_str("</section>");
    }
    if !fine.is_empty() {
        out.push_str(
            r#"<section aria-labelledby="h-fine"><h2 id="h-fine">Healthy and in cooldown</h2>"#,
        );
        if compact {
            out.push_str("<p>Many sites match: each is one row. Filter, or follow a site's name, to see its card.</p>");
            rows(&mut out, &fine, "Sites");
        } else {
            for site in &fine {
                card(&mut out, site, now);
            }
        }
        out.push_str("</section>");
    }
    out
}

fn badge(state: &str) -> String {
    let look = look(state);
    format!(
        r#"<span class="badge {class}" data-state="{state}"><span aria-hidden="true">{symbol}</span> {words}</span>"#,
        class = look.class,
        state = escape(state),
        symbol = look.symbol,
        words = look.words,
    )
}

fn role_of<'a>(site: &'a SiteStatus, role: &str) -> Vec<&'a str> {
    site.appliances
        .iter()
        .filter(|a| a.failover_role.as_deref() == Some(role))
        .map(|a| a.name.as_str())
        .collect()
}

fn data_age(site: &SiteStatus) -> String {
    match site.data_sync_age_seconds {
        Some(age) => format!(
            "{} old (max {}){}",
            span(age),
            span(site.max_sync_age_seconds),
            if age > site.max_sync_age_seconds {
                " — too old for an automatic failover"
            } else {
                ""
            }
        ),
        None => format!(
            "unknown (max {}) — an automatic failover would be refused",
            span(site.max_sync_age_seconds)
        ),
    }
}

fn rows(out: &mut String, sites: &[&SiteStatus], caption: &str) {
    let _ = write!(
        out,
        r#"<table class="rows"><caption>{}</caption><thead><tr><th scope="col">Site</th><th scope="col">State</th><th scope="col">Primary</th><th scope="col">Backup</th><th scope="col">Data sync</th><th scope="col">Mode</th></tr></thead><tbody>"#,
        escape(caption)
    );
    for site in sites {
        let _ = write!(
            out,
            r#"<tr data-site="{name}"><th scope="row"><a href="?q={link}">{name}</a></th><td>{badge}</td><td>{primary}</td><td>{backup}</td><td>{age}</td><td>{mode}</td></tr>"#,
            name = escape(&site.site),
            link = form_urlencoded::byte_serialize(site.site.as_bytes()).collect::<String>(),
            badge = badge(&site.state),
            primary = escape(&role_of(site, "primary").join(", ")),
            backup = escape(&role_of(site, "backup").join(", ")),
            age = escape(&data_age(site)),
            mode = escape(&site.mode),
        );
    }
    out.push_str("</tbody></table>");
}

fn yes_no(value: bool, yes: &str, no: &str) -> String {
    if value {
        format!(r#"<span class="yes"><span aria-hidden="true">✓</span> {yes}</span>"#)
    } else {
        format!(r#"<span class="no"><span aria-hidden="true">✖</span> {no}</span>"#)
    }
}

fn card(out: &mut String, site: &SiteStatus, now: SystemTime) {
    let id = format!("site-{}", anchor(&site.site));
    let _ = write!(
        out,
        r#"<article class="card {class}" id="{id}" data-site="{name}" aria-labelledby="{id}-h"><h3 id="{id}-h">{name} {badge}</h3><p class="reason"><span class="label">Why:</span> <span data-field="reason">{reason}</span></p>"#,
        class = look(&site.state).class,
        name = escape(&site.site),
        badge = badge(&site.state),
        reason = escape(&site.reason),
    );
    if let Some(blocker) = &site.blocker {
        let _ = write!(
            out,
            r#"<p class="blocker"><strong>Failover blocked by:</strong> {}</p>"#,
            escape(blocker)
        );
    }
    if let Some(progress) = &site.failover_in_progress {
        let _ = write!(
            out,
            r#"<p class="progress"><strong>Failover in progress:</strong> {}</p>"#,
            escape(progress)
        );
    }
    for alert in &site.alerts {
        let _ = write!(
            out,
            r#"<p class="alert" role="note"><strong>Alert {}:</strong> {}</p>"#,
            escape(&alert.alert),
            escape(&alert.reason)
        );
    }

    // The facts an operator checks first.
    let pause = match &site.pause {
        Some(p) => format!(
            "paused by {} since {}: {}",
            escape(&p.by),
            escape(&clock(&p.since, now)),
            escape(&p.reason)
        ),
        None => "not paused".to_string(),
    };
    let cooldown = if site.cooldown_remaining_seconds > 0.0 {
        format!("{} left", span(site.cooldown_remaining_seconds))
    } else {
        "none".to_string()
    };
    let meter = match site.data_sync_age_seconds {
        Some(age) if site.max_sync_age_seconds > 0.0 => format!(
            r#" <meter min="0" max="{max}" high="{high}" value="{value}" aria-hidden="true"></meter>"#,
            max = site.max_sync_age_seconds,
            high = site.max_sync_age_seconds * 0.8,
            value = age.min(site.max_sync_age_seconds),
        ),
        _ => String::new(),
    };
    let _ = write!(
        out,
        r#"<dl class="facts"><div><dt>Mode</dt><dd data-field="mode">{mode}</dd></div><div><dt>Pause</dt><dd data-field="pause">{pause}</dd></div><div><dt>Cooldown</dt><dd data-field="cooldown">{cooldown}</dd></div><div><dt>Data sync</dt><dd data-field="data">{age}{meter}</dd></div><div><dt>Last poll</dt><dd>{poll}</dd></div></dl>"#,
        mode = escape(&site.mode),
        age = escape(&data_age(site)),
        poll = escape(
            &site
                .last_poll
                .as_deref()
                .map(|p| clock(p, now))
                .unwrap_or_else(|| "never".to_string())
        ),
    );

    // Both appliances.
    let _ = write!(
        out,
        r#"<table class="appliances"><caption class="visually-hidden">Appliances of {}</caption><thead><tr><th scope="col">Appliance</th><th scope="col">Failover role</th><th scope="col">Reachable</th><th scope="col">Healthy</th><th scope="col">Version</th><th scope="col">API budget left</th><th scope="col">Condition</th></tr></thead><tbody>"#,
        escape(&site.site)
    );
    for appliance in &site.appliances {
        let budget = match (appliance.ratelimit_remaining, appliance.ratelimit_limit) {
            (Some(left), Some(limit)) if limit > 0 => format!(
                "{left} of {limit} ({}%)",
                (left as f64 * 100.0 / limit as f64).round()
            ),
            _ => "not reported yet".to_string(),
        };
        let _ = write!(
            out,
            r#"<tr data-appliance="{name}"><th scope="row">{name}</th><td data-field="role">{role}</td><td>{up}</td><td>{healthy}</td><td>{version}</td><td>{budget}</td><td>{condition}</td></tr>"#,
            name = escape(&appliance.name),
            role = escape(&match (appliance.failover_role.as_deref(), appliance.up) {
                (Some(role), true) => role.to_string(),
                (Some(role), false) => format!("{role} (last known)"),
                // Not answering, and its last role is superseded (its peer answers as
                // primary): what it believes now is unknown.
                (None, false) => "unknown (not answering)".to_string(),
                (None, true) => "unknown".to_string(),
            }),
            up = yes_no(appliance.up, "yes", "no"),
            healthy = yes_no(appliance.healthy, "yes", "no"),
            version = escape(appliance.version.as_deref().unwrap_or("unknown")),
            budget = escape(&budget),
            condition = escape(&appliance.condition),
        );
    }
    out.push_str("</tbody></table>");

    // What happened: the timeline, then the decisions in words.
    let events = events_of(&site.decisions);
    timeline(out, &id, &events, now);
    decisions(out, &id, &site.decisions, now);
    out.push_str("</article>");
}

fn decisions(out: &mut String, id: &str, list: &[DecisionStatus], now: SystemTime) {
    if list.is_empty() {
        out.push_str(r#"<p class="decisions-none">No decision yet.</p>"#);
        return;
    }
    out.push_str(r#"<h4>Last decisions, newest first</h4>"#);
    let item = |d: &DecisionStatus| {
        format!(
            r#"<li><time datetime="{at}">{clock}</time> <span class="state-word">[{state}]</span> {message}</li>"#,
            at = escape(&d.at),
            clock = escape(&clock(&d.at, now)),
            state = look(&d.state).words,
            message = escape(&d.message),
        )
    };
    out.push_str(r#"<ol class="decisions">"#);
    for d in list.iter().rev().take(DECISIONS_SHOWN) {
        out.push_str(&item(d));
    }
    out.push_str("</ol>");
    if list.len() > DECISIONS_SHOWN {
        let _ = write!(
            out,
            r#"<details id="{id}-older"><summary>{} older decisions</summary><ol class="decisions">"#,
            list.len() - DECISIONS_SHOWN
        );
        for d in list.iter().rev().skip(DECISIONS_SHOWN) {
            out.push_str(&item(d));
        }
        out.push_str("</ol></details>");
    }
}

/// A moment on the timeline: a decision or a state change, with the state it led to.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    pub at: SystemTime,
    pub state: String,
    pub text: String,
}

/// The decisions as timeline events, oldest first (entries with an unreadable time are left
/// out of the drawing; they stay in the list in words).
pub fn events_of(decisions: &[DecisionStatus]) -> Vec<TimelineEvent> {
    let mut events: Vec<TimelineEvent> = decisions
        .iter()
        .filter_map(|d| {
            UtcTime::parse(&d.at).ok().map(|at| TimelineEvent {
                at: at.to_system_time(),
                state: d.state.clone(),
                text: d.message.clone(),
            })
        })
        .collect();
    events.sort_by_key(|e| e.at);
    events
}

const TIMELINE_WIDTH: f64 = 1000.0;
/// The least span drawn, so that two events a second apart are not the whole width.
const TIMELINE_MIN_SPAN: Duration = Duration::from_secs(20);
/// The most: older events are summarised at the left edge.
const TIMELINE_MAX_SPAN: Duration = Duration::from_secs(24 * 3600);

/// An inline SVG: a band per state (from each event to the next, and the last one to now),
/// a tick per event, a diamond per failover. Its text alternative lists the states in order,
/// and every band and mark has a tooltip, so nothing depends on seeing the colours.
pub fn timeline(out: &mut String, id: &str, events: &[TimelineEvent], now: SystemTime) {
    let Some(first) = events.first() else {
        return;
    };
    // From a little before the oldest event to now, so that the events use the width.
    let since_first = now.duration_since(first.at).unwrap_or_default();
    let span = since_first
        .mul_f64(1.05)
        .clamp(TIMELINE_MIN_SPAN, TIMELINE_MAX_SPAN);
    let start = now.checked_sub(span).unwrap_or(first.at);
    let x = |at: SystemTime| -> f64 {
        let from_start = at.duration_since(start).unwrap_or_default().as_secs_f64();
        (from_start / span.as_secs_f64() * TIMELINE_WIDTH).clamp(0.0, TIMELINE_WIDTH)
    };
    let mut sequence: Vec<&'static str> = Vec::new();
    for event in events {
        let words = look(&event.state).words;
        if sequence.last() != Some(&words) {
            sequence.push(words);
        }
    }
    let _ = write!(
        out,
        r#"<figure class="timeline"><svg viewBox="0 0 {w} 64" role="img" aria-labelledby="{id}-tl"><title id="{id}-tl">State over the last {span}: {sequence}</title>"#,
        w = TIMELINE_WIDTH,
        span = span_words(span),
        sequence = sequence.join(", then "),
    );
    for (index, event) in events.iter().enumerate() {
        let from = x(event.at);
        let to = events
            .get(index + 1)
            .map(|n| x(n.at))
            .unwrap_or(TIMELINE_WIDTH);
        let look = look(&event.state);
        let width = (to - from).max(1.0);
        let _ = write!(
            out,
            r#"<rect class="band {class}" x="{from:.1}" y="4" width="{width:.1}" height="30"><title>{words} from {at}</title></rect>"#,
            class = look.class,
            words = look.words,
            at = escape(&UtcTime::from_system_time(event.at).to_string()),
        );
        // The words inside the band when it is wide enough to hold them.
        if width > 9.0 * look.words.len() as f64 {
            let _ = write!(
                out,
                r#"<text class="band-label" x="{:.1}" y="24">{} {}</text>"#,
                from + 4.0,
                look.symbol,
                look.words
            );
        }
    }
    for event in events {
        let at = x(event.at);
        let failover = event.text.to_lowercase().contains("failover");
        if failover {
            let _ = write!(
                out,
                r#"<path class="mark failover" d="M{a:.1} 36 l6 8 l-6 8 l-6 -8 z"><title>{text}</title></path>"#,
                a = at,
                text = escape(&event.text),
            );
        } else {
            let _ = write!(
                out,
                r#"<line class="mark" x1="{at:.1}" x2="{at:.1}" y1="36" y2="46"><title>{text}</title></line>"#,
                text = escape(&event.text),
            );
        }
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="2" y="62">{span} ago</text><text class="axis" x="{w}" y="62" text-anchor="end">now</text></svg><figcaption>Timeline of the last {span_words} (from the last decisions kept in memory; a diamond marks a failover).</figcaption></figure>"#,
        span = span_words(span),
        span_words = span_words(span),
        w = TIMELINE_WIDTH - 2.0,
    );
}

fn span_words(span: Duration) -> String {
    self::span(span.as_secs_f64())
}

/// An id fragment from a site name: letters, digits, `-` and `_`, others as `-`.
pub fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The style, shared with the runbook page. High-contrast colours (each text colour is at
/// least 4.5:1 on its background), and a dark variant that keeps the same ratios.
pub const STYLE: &str = r#"
:root{--bg:#fff;--fg:#161616;--muted:#4a4a4a;--card:#f7f7f7;--line:#8a8a8a;--ok:#0b5d1e;--ok-bg:#e3f4e6;--info:#0b3d91;--info-bg:#e3ecfa;--warn:#6b4400;--warn-bg:#fff2cc;--crit:#8b0000;--crit-bg:#fde2e2;--link:#0b3d91}
@media (prefers-color-scheme:dark){:root{--bg:#121212;--fg:#ededed;--muted:#c4c4c4;--card:#1e1e1e;--line:#8a8a8a;--ok:#9be3a8;--ok-bg:#12361b;--info:#a9c6ff;--info-bg:#142a4f;--warn:#ffd98a;--warn-bg:#3d2c00;--crit:#ffb3b3;--crit-bg:#4a1010;--link:#a9c6ff}}
*{box-sizing:border-box}body{margin:0 auto;max-width:78rem;padding:0 1rem 2rem;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
a{color:var(--link)}h1{font-size:1.6rem;margin:.8rem 0 .2rem}h1 small{font-size:.9rem;color:var(--muted);font-weight:normal}h2{font-size:1.3rem;margin:1.4rem 0 .6rem}h3{font-size:1.15rem;margin:0 0 .4rem}h4{font-size:1rem;margin:.8rem 0 .3rem}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.3rem}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
form{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.6rem 0}input[type=search]{min-width:18rem;padding:.35rem .5rem;font:inherit;border:1px solid var(--line);background:var(--bg);color:var(--fg)}button{font:inherit;padding:.35rem .8rem}
#live{color:var(--muted);font-size:.9rem}#live.lost{color:var(--crit);font-weight:bold}
.card{background:var(--card);border:1px solid var(--line);border-left:.5rem solid var(--line);border-radius:.3rem;padding:.8rem 1rem;margin:0 0 1rem}
.card.ok{border-left-color:var(--ok)}.card.info{border-left-color:var(--info)}.card.warn{border-left-color:var(--warn)}.card.crit{border-left-color:var(--crit)}
.badge{display:inline-block;font-size:.85rem;font-weight:bold;padding:.1rem .5rem;border:1px solid;border-radius:1rem;vertical-align:middle;text-transform:uppercase;letter-spacing:.02em}
.badge.ok{color:var(--ok);background:var(--ok-bg)}.badge.info{color:var(--info);background:var(--info-bg)}.badge.warn{color:var(--warn);background:var(--warn-bg)}.badge.crit{color:var(--crit);background:var(--crit-bg)}
.reason{margin:.2rem 0 .5rem}.label{font-weight:bold}.blocker,.alert,.progress{margin:.3rem 0;padding:.3rem .5rem;border-left:.3rem solid var(--crit);background:var(--crit-bg);color:var(--fg)}
.facts{display:flex;flex-wrap:wrap;gap:.3rem 1.6rem;margin:.5rem 0}.facts div{min-width:9rem}.facts dt{font-size:.8rem;color:var(--muted);text-transform:uppercase}.facts dd{margin:0}
meter{width:8rem;vertical-align:middle}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.95rem}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid var(--line)}thead th{font-size:.8rem;color:var(--muted);text-transform:uppercase}caption{text-align:left;font-weight:bold;padding:.3rem 0}
.yes{color:var(--ok)}.no{color:var(--crit);font-weight:bold}
.timeline{margin:.6rem 0}.timeline svg{width:100%;height:auto;display:block}.timeline figcaption{font-size:.8rem;color:var(--muted)}
.band.ok{fill:var(--ok-bg);stroke:var(--ok)}.band.info{fill:var(--info-bg);stroke:var(--info)}.band.warn{fill:var(--warn-bg);stroke:var(--warn)}.band.crit{fill:var(--crit-bg);stroke:var(--crit)}
.band-label{font-size:13px;fill:var(--fg)}.axis{font-size:11px;fill:var(--muted)}.mark{stroke:var(--fg);stroke-width:2}.mark.failover{fill:var(--fg)}
.decisions{margin:.2rem 0;padding-left:1.2rem}.decisions li{margin:.15rem 0}.decisions time{font-variant-numeric:tabular-nums;color:var(--muted)}.state-word{font-size:.85rem;font-weight:bold}
details summary{cursor:pointer;margin:.3rem 0}footer{margin-top:2rem;font-size:.85rem;color:var(--muted)}
.runbook h3{border-top:1px solid var(--line);padding-top:1rem;margin-top:1.6rem}.runbook code{background:var(--card);padding:0 .2rem}
"#;

/// The refresh: fetch the sites part of this page and swap it in, keeping the filter and the
/// open disclosures; pause while the tab is hidden; say so when the watchdog stops answering.
pub const SCRIPT: &str = r#"
(function(){
'use strict';
var every=parseInt(document.body.getAttribute('data-refresh-ms'),10)||2000;
var sites=document.getElementById('sites'),live=document.getElementById('live'),q=document.getElementById('q'),form=document.getElementById('filter');
var busy=false,lost=false,timer=null;
function say(text,isLost){if(isLost!==lost||live.textContent!==text){live.textContent=text;}live.className=isLost?'lost':'';lost=isLost;}
function refresh(){
 if(busy)return;busy=true;
 var url='?partial=1&q='+encodeURIComponent(q.value);
 fetch(url,{cache:'no-store',credentials:'same-origin'}).then(function(r){if(!r.ok)throw new Error('HTTP '+r.status);return r.text();})
 .then(function(html){
  var open=[];sites.querySelectorAll('details[open]').forEach(function(d){if(d.id)open.push(d.id);});
  sites.innerHTML=html;
  open.forEach(function(id){var d=document.getElementById(id);if(d)d.open=true;});
  say('Live: refreshed every '+Math.round(every/1000)+' s without reloading.',false);
 }).catch(function(e){say('The watchdog does not answer ('+e.message+'); retrying.',true);})
 .then(function(){busy=false;});
}
function schedule(){clearInterval(timer);timer=setInterval(function(){if(!document.hidden)refresh();},every);}
form.addEventListener('submit',function(ev){ev.preventDefault();history.replaceState(null,'',q.value?'?q='+encodeURIComponent(q.value):location.pathname);refresh();});
q.addEventListener('input',function(){clearTimeout(q.t);q.t=setTimeout(function(){history.replaceState(null,'',q.value?'?q='+encodeURIComponent(q.value):location.pathname);refresh();},250);});
document.addEventListener('visibilitychange',function(){if(!document.hidden)refresh();});
say('Live: refreshed every '+Math.round(every/1000)+' s without reloading.',false);
schedule();
})();
"#;

/// Above this size the page is sent gzip-compressed to a browser that accepts it (at 1,000
/// pairs a refresh is about 280 KiB of HTML and 20 KiB compressed).
pub const GZIP_ABOVE: usize = 32 * 1024;

/// Whether an `Accept-Encoding` header value accepts gzip.
pub fn accepts_gzip<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().any(|v| {
        v.split(',').any(|e| {
            let mut parts = e.trim().split(';');
            parts.next() == Some("gzip") && !parts.any(|p| p.trim() == "q=0")
        })
    })
}

/// `text` gzip-compressed (fast: this is done for every refresh).
pub fn gzip(text: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(text).ok()?;
    encoder.finish().ok()
}

/// The Content-Security-Policy of the HTML pages: nothing but this page's own style and
/// script (by hash), fetches to itself, forms to itself, no framing.
pub static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    let hash = |text: &str| {
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    };
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        hash(STYLE),
        hash(SCRIPT)
    )
});

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::exporter::status::{AlertStatus, ApplianceStatus, PauseStatus};

    fn appliance(name: &str, role: &str, up: bool) -> ApplianceStatus {
        ApplianceStatus {
            name: name.to_string(),
            url: format!("https://{name}.example"),
            up,
            healthy: up,
            condition: if up {
                "healthy"
            } else {
                "not answering (connect refused)"
            }
            .to_string(),
            failover_role: Some(role.to_string()),
            version: Some("25.2.1".to_string()),
            ratelimit_limit: Some(15000),
            ratelimit_remaining: Some(14000),
            ..ApplianceStatus::default()
        }
    }

    fn site(name: &str, state: &str) -> SiteStatus {
        SiteStatus {
            site: name.to_string(),
            mode: "auto".to_string(),
            state: state.to_string(),
            reason: format!("{name} is {state}"),
            appliances: vec![
                appliance("east", "primary", state != "primary_suspect"),
                appliance("west", "backup", true),
            ],
            data_sync_age_seconds: Some(30.0),
            max_sync_age_seconds: 900.0,
            decisions: vec![
                DecisionStatus {
                    at: "2026-11-23T06:00:00.000+00:00".to_string(),
                    state: "healthy".to_string(),
                    message: "healthy pair".to_string(),
                },
                DecisionStatus {
                    at: "2026-11-23T06:05:00.000+00:00".to_string(),
                    state: state.to_string(),
                    message: "failover to west done; cooldown for 10m".to_string(),
                },
            ],
            ..SiteStatus::default()
        }
    }

    fn now() -> SystemTime {
        UtcTime::parse("2026-11-23T06:10:00Z")
            .unwrap()
            .to_system_time()
    }

    fn doc(sites: Vec<SiteStatus>) -> StatusDoc {
        StatusDoc {
            version: "0.1.0".to_string(),
            sites,
        }
    }

    #[test]
    fn problems_come_first_and_every_state_is_written_in_words() {
        let page = render(
            &doc(vec![
                site("alpha", "healthy"),
                site("bravo", "split_brain"),
                site("charlie", "cooldown"),
            ]),
            &PageQuery::default(),
            now(),
        );
        let bravo = page.find(r#"data-site="bravo""#).unwrap();
        let alpha = page.find(r#"data-site="alpha""#).unwrap();
        let charlie = page.find(r#"data-site="charlie""#).unwrap();
        assert!(bravo < alpha && bravo < charlie, "the split brain is first");
        assert!(page.contains("Needs attention"));
        for words in ["Split brain", "Healthy", "Cooldown"] {
            assert!(page.contains(words), "{words}");
        }
        assert!(page.contains("1 needs attention"));
    }

    #[test]
    fn text_from_the_appliances_is_escaped() {
        let mut evil = site("<script>", "healthy");
        evil.reason = "\"><img src=x onerror=alert(1)>".to_string();
        evil.appliances[0].condition = "<b>".to_string();
        let page = render(&doc(vec![evil]), &PageQuery::default(), now());
        assert!(!page.contains("<img"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("&lt;script&gt;"));
        // The only script is the page's own.
        assert_eq!(page.matches("<script>").count(), 1);
    }

    #[test]
    fn the_filter_narrows_and_the_partial_is_only_the_sites() {
        let all = doc(vec![site("paris", "healthy"), site("berlin", "blind")]);
        let query = PageQuery::parse(Some("q=PAR&partial=1"));
        assert_eq!(query.filter, "PAR");
        let part = render(&all, &query, now());
        assert!(part.contains(r#"data-site="paris""#));
        assert!(!part.contains(r#"data-site="berlin""#));
        assert!(!part.contains("<html"));
        assert!(part.contains("1 match"));
        let none = render(&all, &PageQuery::parse(Some("q=tokyo")), now());
        assert!(none.contains("No site matches the filter."));
        assert!(none.contains(r#"value="tokyo""#));
    }

    #[test]
    fn at_a_thousand_pairs_healthy_sites_are_rows_and_problems_stay_cards() {
        let mut sites: Vec<SiteStatus> = (0..1000)
            .map(|i| site(&format!("site{i:04}"), "healthy"))
            .collect();
        sites[500] = site("site0500", "no_primary");
        let page = render(&doc(sites), &PageQuery::parse(Some("partial=1")), now());
        assert_eq!(
            page.matches("<article").count(),
            1,
            "only the problem is a card"
        );
        assert_eq!(page.matches("<tr data-site=").count(), 999);
        // Each refresh moves this much (uncompressed); the script polls every 5 s at this size.
        assert!(page.len() < 600 * 1024, "{} bytes", page.len());
    }

    /// The cost of one refresh at 1,000 pairs (10 needing attention), for the report:
    /// `cargo test --release --lib exporter::page::tests::cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn cost_of_a_refresh_at_a_thousand_pairs() {
        let mut sites: Vec<SiteStatus> = (0..1000)
            .map(|i| site(&format!("site{i:04}"), "healthy"))
            .collect();
        for i in 0..10 {
            sites[i * 97] = site(&format!("site{:04}", i * 97), "blind");
        }
        let doc = doc(sites);
        let query = PageQuery::parse(Some("partial=1"));
        let rounds = 200;
        let started = std::time::Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            bytes = render(&doc, &query, now()).len();
        }
        let each = started.elapsed() / rounds;
        let whole = render(&doc, &PageQuery::default(), now());
        let started = std::time::Instant::now();
        let compressed = gzip(whole.as_bytes()).unwrap().len();
        let gzip_time = started.elapsed();
        println!(
            "1000 pairs: partial {bytes} bytes, whole page {} bytes ({compressed} gzipped in {gzip_time:?}), {each:?} per render",
            whole.len()
        );
    }

    #[test]
    fn the_card_shows_pause_cooldown_alerts_and_decisions() {
        let mut s = site("hq", "cooldown");
        s.cooldown_remaining_seconds = 552.0;
        s.pause = Some(PauseStatus {
            reason: "upgrade".to_string(),
            by: "alice".to_string(),
            since: "2026-11-23T06:01:00Z".to_string(),
        });
        s.alerts = vec![AlertStatus {
            alert: "failover_failed".to_string(),
            reason: "gave up".to_string(),
        }];
        let page = render(&doc(vec![s]), &PageQuery::default(), now());
        assert!(page.contains("9m 12s left"));
        assert!(page.contains("paused by alice since 06:01:00 UTC: upgrade"));
        assert!(page.contains("Alert failover_failed:"));
        assert!(page.contains("failover to west done"));
        assert!(page.contains("14000 of 15000 (93%)"));
        assert!(page.contains("30s old (max 15m)"));
    }

    #[test]
    fn the_timeline_draws_a_band_per_state_and_says_it_in_words() {
        let events = events_of(&site("hq", "cooldown").decisions);
        let mut svg = String::new();
        timeline(&mut svg, "t", &events, now());
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("State over the last 10m 30s: Healthy, then Cooldown"));
        assert!(svg.contains(r#"class="mark failover""#));
        // The first event is 10 minutes back, near the left edge; the second 5 minutes back.
        assert!(svg.contains(r#"x="47.6""#), "{svg}");
        assert!(svg.contains(r#"x="523.8""#), "{svg}");
        let mut empty = String::new();
        timeline(&mut empty, "t", &[], now());
        assert!(empty.is_empty());
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        assert!(accepts_gzip(["gzip, deflate, br"]));
        assert!(accepts_gzip(["br", "gzip;q=0.5"]));
        assert!(!accepts_gzip(["br, deflate"]));
        assert!(!accepts_gzip(["gzip;q=0"]));
        let page = "x".repeat(GZIP_ABOVE * 2);
        assert!(gzip(page.as_bytes()).unwrap().len() < page.len() / 10);
    }

    #[test]
    fn the_policy_pins_the_inline_style_and_script() {
        let policy = CONTENT_SECURITY_POLICY.as_str();
        assert!(policy.starts_with("default-src 'none'"));
        assert_eq!(policy.matches("'sha256-").count(), 2);
        assert!(!policy.contains("unsafe-inline"));
    }
}
