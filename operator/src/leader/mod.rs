//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's:
//! replicas of the operator compete for one Lease; the holder renews it
//! every retry period and leads until `renew deadline` after its last
//! successful renewal; the others follow and take it over once it has not
//! changed for a whole lease duration. Time is this process's monotonic
//! clock only (never the holder's `renewTime`), so clock skew between
//! nodes does not matter. The controller's client goes through
//! [`WriteGate`], which refuses every write the moment leadership lapses:
//! a leader that was paused (SIGSTOP, a stalled node) writes nothing when
//! it resumes.

mod decide;
mod gate;
mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

pub use decide::{Observed, Step, decide};
pub use gate::WriteGate;
pub use settings::LeaderSettings;

/// Whether this process leads now: until a monotonic deadline that each
/// successful renewal moves on.
pub struct Leadership {
    base: Instant,
    /// Milliseconds after `base` until which this process leads; 0: not.
    until_ms: std::sync::atomic::AtomicU64,
    changes: watch::Sender<bool>,
}

impl Leadership {
    pub fn new() -> Arc<Self> {
        let (changes, _) = watch::channel(false);
        Arc::new(Self {
            base: Instant::now(),
            until_ms: std::sync::atomic::AtomicU64::new(0),
            changes,
        })
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn is_leader(&self) -> bool {
        self.ms(Instant::now()) < self.until_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lead_until(&self, until: Instant) {
        self.until_ms
            .store(self.ms(until).max(1), std::sync::atomic::Ordering::SeqCst);
        self.publish();
    }

    fn step_down(&self) {
        self.until_ms.store(0, std::sync::atomic::Ordering::SeqCst);
        self.publish();
    }

    fn publish(&self) {
        let leading = self.is_leader();
        self.changes.send_if_modified(|was| {
            let changed = *was != leading;
            *was = leading;
            changed
        });
    }

    /// Follows the changes: `true` when this process starts leading,
    /// `false` when it stops.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }
}

/// Keeps competing for the Lease until the process ends.
pub async fn keep_lease(api: Api<Lease>, settings: LeaderSettings, leadership: Arc<Leadership>) {
    let mut observed: Option<Observed> = None;
    loop {
        let started = Instant::now();
        match try_lead(&api, &settings, &mut observed, started).await {
            Ok(true) => leadership.lead_until(started + settings.renew_deadline),
            Ok(false) => leadership.step_down(),
            Err(e) => {
                // Leadership lapses by itself at its deadline.
                tracing::warn!(error = %e, lease = %settings.lease_name, "lease request failed");
                leadership.publish();
            }
        }
        tokio::time::sleep(jittered(settings.retry_period)).await;
        // A renewal that came too late to count.
        leadership.publish();
    }
}

/// Up to 10% more than `period`, so replicas do not poll in step.
fn jittered(period: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    period + period.mul_f64(f64::from(byte[0]) / 2550.0)
}

/// One round: `Ok(true)` when this process holds the Lease after it.
async fn try_lead(
    api: &Api<Lease>,
    settings: &LeaderSettings,
    observed: &mut Option<Observed>,
    now: Instant,
) -> Result<bool, kube::Error> {
    let lease = api.get_opt(&settings.lease_name).await?;
    let step = decide(
        lease.as_ref().map(LeaseView::of).as_ref(),
        &settings.identity,
        observed,
        now,
        settings.lease_duration,
    );
    let stamp = Some(MicroTime(Timestamp::now()));
    let duration = i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let result = match (step, lease) {
        (Step::Follow, _) => return Ok(false),
        (Step::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.lease_name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(settings.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: stamp.clone(),
                    renew_time: stamp,
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        (Step::Renew | Step::TakeOver, None) => return Ok(false),
        (step, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if step == Step::TakeOver {
                spec.holder_identity = Some(settings.identity.clone());
                spec.acquire_time = stamp.clone();
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                tracing::info!(identity = %settings.identity, "taking over the lease");
            }
            spec.lease_duration_seconds = Some(duration);
            spec.renew_time = stamp;
            // The resourceVersion makes this a compare-and-swap: a rival's
            // write in between is a conflict, not a second leader.
            api.replace(&settings.lease_name, &PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (on shutdown), so a standby takes over at once
/// instead of after a lease duration.
pub async fn release(api: &Api<Lease>, settings: &LeaderSettings, leadership: &Leadership) {
    if !leadership.is_leader() {
        return;
    }
    leadership.step_down();
    let Ok(Some(mut lease)) = api.get_opt(&settings.lease_name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    if let Err(e) = api
        .replace(&settings.lease_name, &PostParams::default(), &lease)
        .await
    {
        tracing::warn!(error = %e, "could not release the lease");
    } else {
        tracing::info!(lease = %settings.lease_name, "released the lease");
    }
}

/// What the decision needs of a Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub resource_version: String,
}

impl LeaseView {
    fn of(lease: &Lease) -> Self {
        Self {
            holder: lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.clone())
                .filter(|h| !h.is_empty()),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}
