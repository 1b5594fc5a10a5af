//! Entry points for the cargo-fuzz targets in `fuzz/`: every parser of outside input, each
//! taking arbitrary bytes. Whatever the bytes, each returns; a panic (or an abort on an
//! allocation the bytes asked for) is a bug the fuzzer reports. Not an API: the crate's own
//! types stay private, and these functions only say whether parsing went through.

use std::path::Path;
use std::time::Duration;

/// The v2 JSON models: `/health` (as a 200 and as a 500), `/appliance`, `/info`, messages and
/// 422 error bags, each bounded as the client keeps them.
pub fn v2_json(data: &[u8]) {
    use crate::api::model::{ApplianceRecord, Health, json};
    if let Ok((health, message)) = json::health(data, true) {
        let _ = Health::Unhealthy { health, message }.bounded();
    }
    if let Ok((health, _)) = json::health(data, false) {
        let _ = Health::Healthy(health).bounded();
    }
    if let Ok(records) = json::appliances(data) {
        let _ = ApplianceRecord::bounded_list(records);
    }
    if let Ok(info) = json::info(data) {
        let _ = info.bounded();
    }
    let _ = json::message(data);
    let _ = json::error_bag(data);
}

/// The XML command API's documents.
pub fn xml(data: &[u8]) {
    use crate::api::xml_parse;
    let _ = xml_parse::check_health(data).map(|a| a.map(|h| h.bounded()));
    let _ = xml_parse::appliances(data);
    let _ = xml_parse::api_info(data);
    let _ = xml_parse::failover_answer(data);
}

/// A token answer, parsed and then leased from the token cache the way the client does, so
/// that an `expires_in` of any size goes through the cache's time arithmetic.
pub fn token_response(data: &[u8]) {
    use crate::api::model::json;
    use crate::api::token::TokenCache;
    use crate::secret::Secret;
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    let Ok((token, expires_in)) = json::token(data) else {
        return;
    };
    let Some(runtime) = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .ok()
        })
        .as_ref()
    else {
        return;
    };
    /// A mint that fails after reaching the appliance (the harshest case for the backoff).
    struct Refused;
    impl crate::api::token::MintFailure for Refused {
        fn reached_appliance(&self) -> bool {
            true
        }
    }
    runtime.block_on(async {
        let cache = TokenCache::new();
        let mint = || {
            std::future::ready(Ok::<_, Refused>((
                Secret::new(token),
                expires_in.map(Duration::from_secs),
            )))
        };
        if let Ok(lease) = cache.lease(mint).await {
            cache.accepted(lease.generation).await;
            // A second lease: reuse (or refresh) decides on the stored expiry.
            let _ = cache
                .lease(|| std::future::ready(Err::<(Secret, Option<Duration>), _>(Refused)))
                .await;
        }
    });
}

/// The configuration file.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::parse(text, "fuzz.toml");
    }
}

/// A site's memory file (`SITE.state.json`).
pub fn state_file(data: &[u8]) {
    let _ = crate::daemon::store::decode(Path::new("fuzz.state.json"), data);
}

/// One line on the control socket: a request as the daemon reads it, an answer as the CLI
/// reads it.
pub fn control_line(data: &[u8]) {
    use crate::control::protocol::{Answer, Request};
    if let Ok(request) = serde_json::from_slice::<Request>(data) {
        let _ = (request.site(), request.user());
    }
    let _ = serde_json::from_slice::<Answer>(data);
}

/// The exporter's web configuration, in both forms.
pub fn web_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::exporter::web_config::parse_text(text, false);
        let _ = crate::exporter::web_config::parse_text(text, true);
    }
}

#[cfg(test)]
mod tests {
    /// Every seed in `fuzz/corpus/` goes through its target in the ordinary test run, so the
    /// corpora (and the crashes they keep as regressions) are checked without a nightly.
    #[test]
    fn every_seed_of_every_corpus_is_handled() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 7] = [
            ("v2_json", super::v2_json),
            ("xml", super::xml),
            ("token_response", super::token_response),
            ("config", super::config),
            ("state_file", super::state_file),
            ("control_line", super::control_line),
            ("web_config", super::web_config),
        ];
        for (name, target) in targets {
            let dir = root.join(name);
            let seeds: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|e| e.unwrap().path())
                .collect();
            assert!(!seeds.is_empty(), "{name} has no seed");
            for seed in seeds {
                target(&std::fs::read(&seed).unwrap());
            }
        }
    }
}
