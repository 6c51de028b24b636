//! What one round of the election does, as a pure function of the Lease
//! seen now and what this process saw before.

use std::time::{Duration, Instant};

use super::LeaseView;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it, held by us.
    Create,
    /// We hold it: renew it.
    Renew,
    /// Its holder let it lapse (unchanged for a lease duration, or
    /// released): take it.
    TakeOver,
    /// Someone else holds it: wait.
    Follow,
}

/// The Lease as last seen, and since when it has not changed (this
/// process's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub resource_version: String,
    pub since: Instant,
}

pub fn decide(
    lease: Option<&LeaseView>,
    me: &str,
    observed: &mut Option<Observed>,
    now: Instant,
    lease_duration: Duration,
) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    if lease.holder.as_deref() == Some(me) {
        return Step::Renew;
    }
    let changed = observed
        .as_ref()
        .is_none_or(|o| o.resource_version != lease.resource_version);
    if changed {
        *observed = Some(Observed {
            resource_version: lease.resource_version.clone(),
            since: now,
        });
    }
    let quiet_for = observed
        .as_ref()
        .map_or(Duration::ZERO, |o| now.saturating_duration_since(o.since));
    if lease.holder.is_none() || quiet_for >= lease_duration {
        Step::TakeOver
    } else {
        Step::Follow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, rv: &str) -> LeaseView {
        LeaseView {
            holder: holder.map(str::to_owned),
            resource_version: rv.into(),
        }
    }

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn no_lease_is_created_and_ours_is_renewed() {
        let now = Instant::now();
        let mut seen = None;
        assert_eq!(decide(None, "a", &mut seen, now, LEASE), Step::Create);
        assert_eq!(
            decide(Some(&lease(Some("a"), "1")), "a", &mut seen, now, LEASE),
            Step::Renew
        );
    }

    #[test]
    fn a_rivals_lease_is_taken_only_after_a_whole_duration_unchanged() {
        let t0 = Instant::now();
        let mut seen = None;
        // What replica "a" decides on seeing `lease` this many seconds in.
        let mut at = |lease: &LeaseView, secs: u64| {
            decide(
                Some(lease),
                "a",
                &mut seen,
                t0 + Duration::from_secs(secs),
                LEASE,
            )
        };
        let held = lease(Some("b"), "7");
        assert_eq!(at(&held, 0), Step::Follow);
        assert_eq!(at(&held, 14), Step::Follow);
        // The holder renewed: the clock starts again.
        let renewed = lease(Some("b"), "8");
        assert_eq!(at(&renewed, 14), Step::Follow);
        assert_eq!(at(&renewed, 28), Step::Follow);
        assert_eq!(at(&renewed, 29), Step::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut seen = None;
        assert_eq!(
            decide(
                Some(&lease(None, "9")),
                "a",
                &mut seen,
                Instant::now(),
                LEASE
            ),
            Step::TakeOver
        );
    }
}
