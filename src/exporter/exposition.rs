//! The `/metrics` text, kept ready so that a scrape costs a copy, not an encoding.
//!
//! With a few sites the text is a few kilobytes and is encoded afresh for every scrape (so it
//! is never stale). With hundreds of sites it runs to megabytes and takes a tenth of a second
//! to encode; then a background task re-encodes it, no more often than twenty times its
//! encoding time (so encoding never takes more than about 5 % of a core), and scrapes are
//! served the last text: at most a few seconds old, which the polls themselves are anyway.
//! A large text is also kept gzip-compressed (it is very repetitive: about 20 to 1), and
//! served so to scrapers that accept it, as Prometheus does: a copy of a megabyte instead of
//! twenty.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use super::metrics::Metrics;

/// Below this size the text is encoded for every scrape (about 20 sites). A size, not a time,
/// so that whether a scrape can be stale does not depend on how busy the machine is.
const FRESH_BELOW: usize = 512 * 1024;
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// A cached text older than this is encoded afresh by the scrape that finds it.
const STALE_AFTER: Duration = Duration::from_secs(30);

struct Cached {
    text: Bytes,
    /// The same text gzip-compressed, for a large text only.
    gzipped: Option<Bytes>,
    encode_time: Duration,
    encoded_at: Instant,
}

/// What a scrape gets: the text, and whether it is gzip-compressed.
pub struct Scrape {
    pub body: Bytes,
    pub gzipped: bool,
}

pub struct Exposition {
    metrics: Arc<Metrics>,
    cached: Mutex<Option<Cached>>,
    /// Whether anyone scraped since the last background encoding: nobody scraping, nothing
    /// to keep fresh.
    scraped: std::sync::atomic::AtomicBool,
}

impl Exposition {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Exposition {
            metrics,
            cached: Mutex::new(None),
            scraped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn encode(&self) -> Cached {
        let started = Instant::now();
        let text = Bytes::from(self.metrics.encode());
        let gzipped = if text.len() >= FRESH_BELOW {
            gzip(&text)
        } else {
            None
        };
        Cached {
            text,
            gzipped,
            encode_time: started.elapsed(),
            encoded_at: started,
        }
    }

    /// The text for a scrape.
    #[cfg(test)]
    pub fn text(&self) -> Bytes {
        self.scrape(false).body
    }

    /// The text for a scrape; compressed when the scraper accepts gzip and the text is large.
    pub fn scrape(&self, accepts_gzip: bool) -> Scrape {
        self.scraped
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        match cached.as_ref() {
            // A large text is served from the cache unless it went stale while nobody scraped.
            Some(c) if c.text.len() >= FRESH_BELOW && c.encoded_at.elapsed() < STALE_AFTER => {
                match (&c.gzipped, accepts_gzip) {
                    (Some(gzipped), true) => Scrape {
                        body: gzipped.clone(),
                        gzipped: true,
                    },
                    _ => Scrape {
                        body: c.text.clone(),
                        gzipped: false,
                    },
                }
            }
            _ => {
                let fresh = self.encode();
                let body = fresh.text.clone();
                *cached = Some(fresh);
                Scrape {
                    body,
                    gzipped: false,
                }
            }
        }
    }

    /// Keeps a large text fresh in the background until `stop`.
    pub async fn refresh(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let (size, encode_time) = self
                .cached
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|c| (c.text.len(), c.encode_time))
                .unwrap_or_default();
            let pause = (encode_time * 20).max(MIN_REFRESH);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
            // Small: every scrape encodes afresh. Not scraped lately: nothing to keep fresh
            // (the next scrape gets the last text, then a fresh one a moment later).
            if size < FRESH_BELOW
                || !self
                    .scraped
                    .swap(false, std::sync::atomic::Ordering::Relaxed)
            {
                continue;
            }
            let this = self.clone();
            // Encoding megabytes is CPU work: keep it off the threads that poll appliances.
            if let Ok(fresh) = tokio::task::spawn_blocking(move || this.encode()).await {
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
            }
        }
    }
}

fn gzip(text: &[u8]) -> Option<Bytes> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(text.len() / 16),
        flate2::Compression::fast(),
    );
    encoder.write_all(text).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::StateKind;
    use crate::exporter::metrics::SiteSample;

    fn sample(state: StateKind) -> SiteSample {
        SiteSample {
            state,
            blocker: None,
            alerts: Default::default(),
            cooldown_remaining_seconds: 0.0,
            paused: false,
            auto_enabled: true,
            last_failover_seconds: None,
            max_sync_age_seconds: 900.0,
            backup_data_age_seconds: None,
            last_poll_seconds: 0.0,
            state_writable: true,
            journal_writable: true,
        }
    }

    #[test]
    fn a_small_text_is_always_fresh() {
        let metrics = Arc::new(Metrics::new());
        let exposition = Exposition::new(metrics.clone());
        metrics.set_site("hq", &sample(StateKind::Healthy));
        let first = exposition.text();
        assert!(
            String::from_utf8_lossy(&first)
                .contains(r#"beyondtrust_watchdog_state{site="hq",state="healthy"} 1"#)
        );
        metrics.set_site("hq", &sample(StateKind::Cooldown));
        let second = exposition.text();
        assert!(
            String::from_utf8_lossy(&second)
                .contains(r#"beyondtrust_watchdog_state{site="hq",state="cooldown"} 1"#)
        );
    }

    #[test]
    fn a_large_text_is_served_from_the_cache() {
        let metrics = Arc::new(Metrics::new());
        let exposition = Exposition::new(metrics.clone());
        for i in 0..2000 {
            metrics.set_site(&format!("site{i}"), &sample(StateKind::Healthy));
        }
        let first = exposition.text();
        assert!(first.len() >= FRESH_BELOW, "{} bytes", first.len());
        metrics.set_site("site0", &sample(StateKind::Cooldown));
        let second = exposition.text();
        assert_eq!(
            first, second,
            "served from the cache until the background refresh"
        );
        let compressed = exposition.scrape(true);
        assert!(
            compressed.gzipped && compressed.body.len() * 5 < first.len(),
            "{} bytes gzipped",
            compressed.body.len()
        );
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&compressed.body[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped.as_bytes(), &first[..]);
    }
}
