//! How the watchdog uses each appliance's API: `beyondtrust_api_*`.

use std::time::Duration;

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::ApplianceSample;
use super::family::{Family, Gauge, Reading, register};
use crate::api::{Endpoint, TokenOutcome, code_labels};

/// The API gauges read from each poll's sample; a new one is one more entry.
const GAUGES: &[Gauge<ApplianceSample>] = &[
    Gauge {
        name: "beyondtrust_api_ratelimit_limit",
        help: "The appliance's hourly API request limit (X-RateLimit-Limit).",
        reading: Reading::Value(|s| s.ratelimit_limit.map(|v| v as f64)),
    },
    Gauge {
        name: "beyondtrust_api_ratelimit_remaining",
        help: "API requests left this hour (X-RateLimit-Remaining).",
        reading: Reading::Value(|s| s.ratelimit_remaining.map(|v| v as f64)),
    },
];

const REQUESTS: &str = "beyondtrust_api_requests_total";
const REQUEST_SECONDS: &str = "beyondtrust_api_request_seconds_total";
const REQUEST_DURATION: &str = "beyondtrust_api_request_duration_seconds";
const TOKEN_REQUESTS: &str = "beyondtrust_api_token_requests_total";

pub(super) struct ApiMetrics {
    gauges: Family<ApplianceSample>,
    requests: IntCounterVec,
    /// Time spent in requests per appliance: with `requests_total`, the mean duration, for
    /// 1 series per appliance.
    request_seconds: CounterVec,
    /// Per-endpoint latency histograms, only when `exporter.request_duration_histograms` asks
    /// for them: 14 series per appliance and endpoint used, about 170 per pair, three times
    /// all the other series of a pair.
    request_duration: Option<HistogramVec>,
    token_requests: IntCounterVec,
}

impl ApiMetrics {
    pub fn new(registry: &Registry, histograms: bool) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                REQUESTS,
                "API requests made, by endpoint and HTTP status code (or error kind when there was no answer).",
            ),
            &["site", "appliance", "endpoint", "code"],
        );
        let request_seconds = CounterVec::new(
            Opts::new(
                REQUEST_SECONDS,
                "Seconds spent in API requests to the appliance (divided by beyondtrust_api_requests_total: the mean duration).",
            ),
            &["site", "appliance"],
        );
        let request_duration = histograms.then(|| {
            HistogramVec::new(
                HistogramOpts::new(
                    REQUEST_DURATION,
                    "Duration of API requests to the appliances, by endpoint.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["site", "appliance", "endpoint"],
            )
        });
        let token_requests = IntCounterVec::new(
            Opts::new(TOKEN_REQUESTS, "OAuth token requests, by outcome."),
            &["site", "appliance", "outcome"],
        );
        ApiMetrics {
            gauges: Family::new(registry, &["site", "appliance"], GAUGES),
            requests: register(registry, REQUESTS, requests),
            request_seconds: register(registry, REQUEST_SECONDS, request_seconds),
            request_duration: request_duration
                .map(|made| register(registry, REQUEST_DURATION, made)),
            token_requests: register(registry, TOKEN_REQUESTS, token_requests),
        }
    }

    /// Creates the token series at zero, so that they exist before the first token.
    pub fn register(&self, site: &str, appliance: &str) {
        self.request_seconds.with_label_values(&[site, appliance]);
        // Only `minted` from the start (its alert counts mints an hour); the failures appear
        // with the first one, and their alert fires on a new series too.
        self.token_requests
            .with_label_values(&[site, appliance, TokenOutcome::Minted.label()]);
    }

    pub fn set(&self, site: &str, appliance: &str, sample: &ApplianceSample) {
        self.gauges.set(&[site, appliance], sample);
    }

    pub fn record_request(
        &self,
        site: &str,
        appliance: &str,
        endpoint: Endpoint,
        code: &str,
        elapsed: Duration,
    ) {
        self.requests
            .with_label_values(&[site, appliance, endpoint.label(), code])
            .inc();
        self.request_seconds
            .with_label_values(&[site, appliance])
            .inc_by(elapsed.as_secs_f64());
        if let Some(histograms) = &self.request_duration {
            histograms
                .with_label_values(&[site, appliance, endpoint.label()])
                .observe(elapsed.as_secs_f64());
        }
    }

    pub fn count_token(&self, site: &str, appliance: &str, outcome: TokenOutcome) {
        self.token_requests
            .with_label_values(&[site, appliance, outcome.label()])
            .inc();
    }

    pub fn forget(&self, site: &str, appliances: &[String]) {
        for appliance in appliances {
            self.gauges.forget(&[site, appliance]);
            for outcome in TokenOutcome::ALL {
                let _ =
                    self.token_requests
                        .remove_label_values(&[site, appliance, outcome.label()]);
            }
            let _ = self.request_seconds.remove_label_values(&[site, appliance]);
            for endpoint in Endpoint::ALL {
                if let Some(histograms) = &self.request_duration {
                    let _ = histograms.remove_label_values(&[site, appliance, endpoint.label()]);
                }
                // The `code` label is a closed set (`code_labels`): every series the site's
                // requests can have made is removed without remembering which were.
                for code in code_labels() {
                    let _ = self.requests.remove_label_values(&[
                        site,
                        appliance,
                        endpoint.label(),
                        code,
                    ]);
                }
            }
        }
    }
}
