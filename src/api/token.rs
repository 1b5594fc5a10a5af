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
//!   poll mint a token and burn through the account's 30), and when the token request itself
//!   fails after reaching the appliance (an answer it cannot use, a 5xx, refused credentials);
//! - trusts the lifetime the appliance announces only within [`MIN_LIFETIME`, `MAX_LIFETIME`]:
//!   `expires_in: 0` must not mean a token per request, nor a huge value an overflow;
//! - whatever the appliance says, mints at most one token per [`MIN_MINT_INTERVAL`].

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::secret::Secret;

/// Lifetime assumed when the token answer has no `expires_in` (the documented value).
pub const DOCUMENTED_LIFETIME: Duration = Duration::from_secs(3600);
/// The shortest lifetime believed. A token that really dies sooner is answered with a 401,
/// and that path has its own backoff; believing `expires_in: 0` would mint per request.
pub const MIN_LIFETIME: Duration = Duration::from_secs(300);
/// The longest lifetime believed: a day, so that no arithmetic on it can overflow and a
/// token is renewed daily even if the appliance claims it never expires.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// At most one token per appliance per this interval, whatever happens: with the account's
/// cap of 30 valid tokens, that leaves other integrations theirs even in the worst case.
pub const MIN_MINT_INTERVAL: Duration = Duration::from_secs(60);
/// Refresh this long before expiry at most, so a request never leaves with a dying token.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// First wait after a freshly minted token was rejected or a token request failed; doubles up
/// to [`MAX_MINT_BACKOFF`].
const FIRST_MINT_BACKOFF: Duration = Duration::from_secs(60);
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
    /// Not minting now; `retry_in` says when it may be tried again.
    BackingOff { retry_in: Duration, why: MintHold },
}

/// Why minting is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MintHold {
    /// A token minted moments ago was rejected; minting again now would only burn tokens.
    RejectedUnused,
    /// The last token requests failed at the appliance.
    MintFailed,
    /// A token was minted less than [`MIN_MINT_INTERVAL`] ago.
    TooSoon,
}

/// How a mint attempt failed, as far as the backoff is concerned.
pub trait MintFailure {
    /// Whether the token request reached the appliance (and so may have cost a token or
    /// shown that asking again now is pointless). A connection that never opened did not.
    fn reached_appliance(&self) -> bool;
}

#[derive(Debug)]
struct Current {
    token: Secret,
    generation: u64,
    refresh_at: Instant,
    expires_at: Instant,
    /// Whether the appliance has accepted this token at least once.
    accepted: bool,
}

#[derive(Debug, Default)]
struct Slot {
    current: Option<Current>,
    generation: u64,
    /// Consecutive tokens rejected before their first use succeeded.
    rejected_unused: u32,
    /// Consecutive token requests that reached the appliance and brought no usable token.
    failed_mints: u32,
    /// When the last token request that reached the appliance was sent.
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
    /// `mint` returns the token and the lifetime the appliance announced.
    pub async fn lease<F, Fut, E>(&self, mint: F) -> Result<Lease, LeaseError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Option<Duration>), E>>,
        E: MintFailure,
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
        if let Some(last) = slot.last_mint {
            // On a tie the later entry wins, and it says more.
            let holds = [
                (MIN_MINT_INTERVAL, MintHold::TooSoon),
                (mint_backoff(slot.failed_mints), MintHold::MintFailed),
                (mint_backoff(slot.rejected_unused), MintHold::RejectedUnused),
            ];
            // The longest hold that applies; a token still valid but due for refresh is
            // used meanwhile rather than refused.
            if let Some((allowed_at, why)) = holds
                .into_iter()
                .map(|(wait, why)| (last + wait, why))
                .filter(|(allowed_at, _)| now < *allowed_at)
                .max_by_key(|(allowed_at, _)| *allowed_at)
            {
                if let Some(current) = &slot.current
                    && now < current.expires_at
                {
                    return Ok(Lease {
                        token: current.token.clone(),
                        generation: current.generation,
                    });
                }
                return Err(LeaseError::BackingOff {
                    retry_in: allowed_at - now,
                    why,
                });
            }
        }
        let minted = mint().await;
        let (token, lifetime) = match minted {
            Ok(minted) => minted,
            Err(error) => {
                if error.reached_appliance() {
                    slot.last_mint = Some(now);
                    slot.failed_mints = slot.failed_mints.saturating_add(1);
                }
                return Err(LeaseError::Mint(error));
            }
        };
        slot.last_mint = Some(now);
        slot.failed_mints = 0;
        let lifetime = clamp_lifetime(lifetime);
        let margin = (lifetime / 10).min(MAX_REFRESH_MARGIN);
        slot.generation = slot.generation.saturating_add(1);
        let generation = slot.generation;
        let minted_at = Instant::now();
        slot.current = Some(Current {
            token: token.clone(),
            generation,
            refresh_at: minted_at + (lifetime - margin),
            expires_at: minted_at + lifetime,
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

/// The wait after `failures` consecutive failures of one kind (none after none).
fn mint_backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = failures.saturating_sub(1).min(10);
    (FIRST_MINT_BACKOFF * 2u32.pow(doublings)).min(MAX_MINT_BACKOFF)
}

/// The lifetime to plan with: the announced one within [`MIN_LIFETIME`, `MAX_LIFETIME`], or
/// the documented hour when none was announced.
pub fn clamp_lifetime(announced: Option<Duration>) -> Duration {
    announced
        .unwrap_or(DOCUMENTED_LIFETIME)
        .clamp(MIN_LIFETIME, MAX_LIFETIME)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A test mint failure: whether it reached the appliance.
    #[derive(Debug, PartialEq)]
    struct Failed(bool);

    impl MintFailure for Failed {
        fn reached_appliance(&self) -> bool {
            self.0
        }
    }

    type Minted = std::future::Ready<Result<(Secret, Option<Duration>), Failed>>;

    fn minter(count: Arc<AtomicU32>, lifetime: Duration) -> impl FnOnce() -> Minted {
        announcing(count, Some(lifetime))
    }

    /// A mint whose answer announces `lifetime` (or nothing).
    fn announcing(count: Arc<AtomicU32>, lifetime: Option<Duration>) -> impl FnOnce() -> Minted {
        move || {
            let n = count.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok((Secret::new(format!("t{n}")), lifetime)))
        }
    }

    fn failing(count: Arc<AtomicU32>, reached: bool) -> impl FnOnce() -> Minted {
        move || {
            count.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(Failed(reached)))
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// An empty cache and the count of tokens minted for it.
    fn fresh() -> (TokenCache, Arc<AtomicU32>) {
        (TokenCache::new(), Arc::new(AtomicU32::new(0)))
    }

    fn backoff<T: std::fmt::Debug>(result: Result<T, LeaseError<Failed>>) -> (Duration, MintHold) {
        match result {
            Err(LeaseError::BackingOff { retry_in, why }) => (retry_in, why),
            other => panic!("expected a backoff, got {other:?}"),
        }
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
                        Ok::<_, Failed>((Secret::new("t"), None))
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
        tokio::time::advance(MIN_MINT_INTERVAL).await;
        let new = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.rejected(old.generation).await; // a second request that used the old token
        let still = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        assert_eq!(still.generation, new.generation);
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_token_is_replaced_but_never_sooner_than_the_minimum_interval() {
        let (cache, mints, _) = revoked_after_use().await;
        let (retry_in, why) = backoff(cache.lease(minter(mints.clone(), HOUR)).await);
        assert_eq!((retry_in, why), (MIN_MINT_INTERVAL, MintHold::TooSoon));
        tokio::time::advance(MIN_MINT_INTERVAL).await;
        assert!(cache.lease(minter(mints.clone(), HOUR)).await.is_ok());
        assert_eq!(mints.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_rejected_before_first_use_back_off_exponentially() {
        let (cache, mints) = fresh();
        let first = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.rejected(first.generation).await;
        let (retry_in, why) = backoff(cache.lease(minter(mints.clone(), HOUR)).await);
        assert_eq!(
            (retry_in, why),
            (Duration::from_secs(60), MintHold::RejectedUnused)
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        let second = cache.lease(minter(mints.clone(), HOUR)).await.unwrap();
        cache.rejected(second.generation).await;
        let (retry_in, _) = backoff(cache.lease(minter(mints.clone(), HOUR)).await);
        assert_eq!(retry_in, Duration::from_secs(120));
        assert_eq!(mints.load(Ordering::SeqCst), 2);
        assert_eq!(mint_backoff(30), MAX_MINT_BACKOFF);
    }

    /// `expires_in: 0`, 1 or any tiny value: one token per [`MIN_LIFETIME`] at most, however
    /// often it is asked for.
    #[tokio::test(start_paused = true)]
    async fn tiny_lifetimes_are_clamped_and_do_not_mint_per_request() {
        for announced in [0, 1, 5] {
            let (cache, mints) = fresh();
            // A request every second for ten minutes.
            for _ in 0..600 {
                let lease = cache
                    .lease(announcing(
                        mints.clone(),
                        Some(Duration::from_secs(announced)),
                    ))
                    .await
                    .unwrap();
                cache.accepted(lease.generation).await;
                tokio::time::advance(Duration::from_secs(1)).await;
            }
            let minted = mints.load(Ordering::SeqCst);
            assert!(
                minted <= 3,
                "expires_in {announced}: {minted} tokens in 10 minutes"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn huge_lifetimes_are_clamped_without_overflow() {
        for announced in [
            Duration::from_secs(u64::MAX),
            Duration::MAX,
            Duration::from_secs(10 * 365 * 86_400),
        ] {
            let (cache, mints) = fresh();
            cache.lease(minter(mints.clone(), announced)).await.unwrap();
            tokio::time::advance(MAX_LIFETIME).await;
            cache.lease(minter(mints.clone(), announced)).await.unwrap();
            assert_eq!(mints.load(Ordering::SeqCst), 2, "renewed within a day");
        }
        assert_eq!(clamp_lifetime(None), DOCUMENTED_LIFETIME);
        assert_eq!(clamp_lifetime(Some(Duration::ZERO)), MIN_LIFETIME);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_token_requests_back_off_but_unreached_ones_do_not() {
        let (cache, mints) = fresh();
        // The appliance was not reached (connection refused): ask again at the next poll.
        for _ in 0..3 {
            assert!(matches!(
                cache.lease(failing(mints.clone(), false)).await,
                Err(LeaseError::Mint(Failed(false)))
            ));
        }
        assert_eq!(mints.load(Ordering::SeqCst), 3);
        // It answered with something unusable: wait, longer each time.
        assert!(cache.lease(failing(mints.clone(), true)).await.is_err());
        let (retry_in, why) = backoff(cache.lease(failing(mints.clone(), true)).await);
        assert_eq!(
            (retry_in, why),
            (Duration::from_secs(60), MintHold::MintFailed)
        );
        tokio::time::advance(retry_in).await;
        assert!(cache.lease(failing(mints.clone(), true)).await.is_err());
        let (retry_in, _) = backoff(cache.lease(failing(mints.clone(), true)).await);
        assert_eq!(retry_in, Duration::from_secs(120));
        assert_eq!(mints.load(Ordering::SeqCst), 5);
        // A good answer ends the backoff.
        tokio::time::advance(retry_in).await;
        assert!(cache.lease(minter(mints.clone(), HOUR)).await.is_ok());
    }
}
