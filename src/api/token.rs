//! One cached OAuth token per appliance.
//!
//! An API account holds at most 30 valid tokens and minting a 31st silently invalidates the
//! oldest, which may belong to another integration sharing the account. So this cache:
//! - keeps one token and reuses it until shortly before it expires;
//! - mints under a lock, so concurrent callers share one mint (single flight);
//! - drops a token only when the caller that saw the 401 still holds the current generation,
//!   so two requests failing together cause one mint, not two;
//! - backs off when a token is rejected before it was ever accepted (a broken clock, a
//!   misconfigured proxy or a secret regenerated again and again would otherwise make every
//!   poll mint a token and burn through the account's 30).

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::secret::Secret;

/// Lifetime assumed when the token answer has no `expires_in` (the documented value).
pub const DOCUMENTED_LIFETIME: Duration = Duration::from_secs(3600);
/// Refresh this long before expiry at most, so a request never leaves with a dying token.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// First wait after a freshly minted token was rejected; doubles up to [`MAX_MINT_BACKOFF`].
const FIRST_MINT_BACKOFF: Duration = Duration::from_secs(30);
const MAX_MINT_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// A token handed to one request, with the generation to report back on 401 or success.
#[derive(Debug, Clone)]
pub struct Lease {
    pub token: Secret,
    pub generation: u64,
}

/// Why no token could be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseError<E> {
    /// Minting itself failed.
    Mint(E),
    /// A token minted moments ago was rejected; minting again now would only burn tokens.
    BackingOff { retry_in: Duration },
}

#[derive(Debug)]
struct Current {
    token: Secret,
    generation: u64,
    refresh_at: Instant,
    /// Whether the appliance has accepted this token at least once.
    accepted: bool,
}

#[derive(Debug, Default)]
struct Slot {
    current: Option<Current>,
    generation: u64,
    /// Consecutive tokens rejected before their first use succeeded.
    rejected_unused: u32,
    last_mint: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct TokenCache {
    slot: Mutex<Slot>,
}

impl TokenCache {
    pub fn new() -> Self {
        TokenCache::default()
    }

    /// The current token, minting one with `mint` when there is none or it is about to expire.
    pub async fn lease<F, Fut, E>(&self, mint: F) -> Result<Lease, LeaseError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Option<Duration>), E>>,
    {
        let mut slot = self.slot.lock().await;
        let now = Instant::now();
        if let Some(current) = &slot.current
            && now < current.refresh_at
        {
            return Ok(Lease {
                token: current.token.clone(),
                generation: current.generation,
            });
        }
        if slot.rejected_unused > 0
            && let Some(last) = slot.last_mint
        {
            let wait = mint_backoff(slot.rejected_unused);
            let allowed_at = last + wait;
            if now < allowed_at {
                return Err(LeaseError::BackingOff {
                    retry_in: allowed_at - now,
                });
            }
        }
        slot.last_mint = Some(now);
        let (token, lifetime) = mint().await.map_err(LeaseError::Mint)?;
        let lifetime = lifetime.unwrap_or(DOCUMENTED_LIFETIME);
        let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN);
        slot.generation += 1;
        let generation = slot.generation;
        slot.current = Some(Current {
            token: token.clone(),
            generation,
            refresh_at: Instant::now() + lifetime - margin,
            accepted: false,
        });
        Ok(Lease { token, generation })
    }

    /// The appliance accepted the token of `generation`.
    pub async fn accepted(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        if let Some(current) = slot.current.as_mut()
            && current.generation == generation
            && !current.accepted
        {
            current.accepted = true;
            slot.rejected_unused = 0;
        }
    }

    /// The appliance answered 401 to the token of `generation`: forget it, unless a newer one
    /// has already replaced it.
    pub async fn rejected(&self, generation: u64) {
        let mut slot = self.slot.lock().await;
        let Some(current) = &slot.current else { return };
        if current.generation != generation {
            return;
        }
        if !current.accepted {
            slot.rejected_unused = slot.rejected_unused.saturating_add(1);
        }
        slot.current = None;
    }
}

fn mint_backoff(rejected_unused: u32) -> Duration {
    let doublings = rejected_unused.saturating_sub(1).min(10);
    (FIRST_MINT_BACKOFF * 2u32.pow(doublings)).min(MAX_MINT_BACKOFF)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn minter(
        count: Arc<AtomicU32>,
        lifetime: Duration,
    ) -> impl FnOnce() -> std::future::Ready<Result<(Secret, Option<Duration>), ()>> {
        move || {
            let n = count.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok((Secret::new(format!("t{n}")), Some(lifetime))))
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// An empty cache and the count of tokens minted for it.
    fn fresh() -> (TokenCache, Arc<AtomicU32>) {
        (TokenCache::new(), Arc::new(AtomicU32::new(0)))
    }

    /// A cache whose first token worked and was then answered with a 401, and that token.
    async fn revoked_after_use() -> (TokenCache, Arc<AtomicU32>, Lease) {
        let (cache, mints) = fresh();
        let first = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.accepted(first.generation).await;
        cache.rejected(first.generation).await;
        (cache, mints, first)
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_until_shortly_before_expiry() {
        let (cache, mints) = fresh();
        let first = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.accepted(first.generation).await;
        tokio::time::advance(Duration::from_secs(3500)).await;
        let again = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        assert_eq!(again.generation, first.generation);
        tokio::time::advance(Duration::from_secs(60)).await;
        let refreshed = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        assert_ne!(refreshed.generation, first.generation);
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_mint() {
        let cache = Arc::new(TokenCache::new());
        let mints = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cache = cache.clone();
            let mints = mints.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .lease(|| async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        mints.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>((Secret::new("t"), None))
                    })
                    .await
                    .unwrap()
                    .generation
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 1);
        }
        assert_eq!(mints.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stale_rejection_does_not_drop_a_newer_token() {
        let (cache, mints, old) = revoked_after_use().await;
        let new = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.rejected(old.generation).await; // a second request that used the old token
        let still = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        assert_eq!(still.generation, new.generation);
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_token_that_had_worked_is_replaced_at_once() {
        let (cache, mints, _) = revoked_after_use().await;
        assert!(cache.lease(minter(mints.clone(), HOUR)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_rejected_before_first_use_back_off_exponentially() {
        let (cache, mints) = fresh();
        let first = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.rejected(first.generation).await;
        match cache.lease(minter(mints.clone(), HOUR)).await {
            Err(LeaseError::BackingOff { retry_in }) => {
                assert_eq!(retry_in, Duration::from_secs(30))
            }
            other => panic!("expected a backoff, got {other:?}"),
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        let second = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.rejected(second.generation).await;
        match cache.lease(minter(mints.clone(), HOUR)).await {
            Err(LeaseError::BackingOff { retry_in }) => {
                assert_eq!(retry_in, Duration::from_secs(60))
            }
            other => panic!("expected a longer backoff, got {other:?}"),
        }
        assert_eq!(mints.load(Ordering::SeqCst), 2);
        assert_eq!(mint_backoff(30), MAX_MINT_BACKOFF);
    }
}
