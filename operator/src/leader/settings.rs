//! `LEADER_ELECT` and the Lease's settings, checked at start: durations
//! that cannot work (a renew deadline not shorter than the lease) stop the
//! operator with the variable named.

use std::time::Duration;

use voicechat_common::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderSettings {
    pub lease_name: String,
    pub lease_namespace: String,
    /// This process's name in the Lease (`POD_NAME`, else host and pid).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderSettings {
    /// `None` unless `LEADER_ELECT` is true.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let invalid = |name: &str, message: String| ConfigError::Invalid {
            name: name.into(),
            message,
        };
        match get("LEADER_ELECT").as_deref() {
            None | Some("false" | "0") => return Ok(None),
            Some("true" | "1") => {}
            Some(other) => {
                return Err(invalid(
                    "LEADER_ELECT",
                    format!("{other:?} is not true or false"),
                ));
            }
        }
        let secs = |name: &str, default: u64| -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| invalid(name, format!("{v:?} is not 1-3600 seconds"))),
            }
        };
        let lease_duration = secs("LEASE_DURATION_SECONDS", 15)?;
        let renew_deadline = secs("RENEW_DEADLINE_SECONDS", 10)?;
        let retry_period = secs("RETRY_PERIOD_SECONDS", 2)?;
        if renew_deadline >= lease_duration {
            return Err(invalid(
                "RENEW_DEADLINE_SECONDS",
                format!(
                    "{}s must be shorter than LEASE_DURATION_SECONDS ({}s): a leader must stop before a rival may take over",
                    renew_deadline.as_secs(),
                    lease_duration.as_secs()
                ),
            ));
        }
        if retry_period >= renew_deadline {
            return Err(invalid(
                "RETRY_PERIOD_SECONDS",
                format!(
                    "{}s must be shorter than RENEW_DEADLINE_SECONDS ({}s): the leader must get to renew in time",
                    retry_period.as_secs(),
                    renew_deadline.as_secs()
                ),
            ));
        }
        let lease_namespace = get("LEASE_NAMESPACE").or_else(|| get("POD_NAMESPACE")).ok_or_else(|| {
            invalid(
                "LEASE_NAMESPACE",
                "leader election needs the Lease's namespace (LEASE_NAMESPACE or POD_NAMESPACE)".into(),
            )
        })?;
        let identity = get("POD_NAME").unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        Ok(Some(Self {
            lease_name: get("LEASE_NAME").unwrap_or_else(|| "voicechat-operator".into()),
            lease_namespace,
            identity,
            lease_duration,
            renew_deadline,
            retry_period,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<LeaderSettings>, ConfigError> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LeaderSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn off_unless_asked_and_defaults_like_client_go() {
        assert_eq!(from(&[]).unwrap(), None);
        assert_eq!(from(&[("LEADER_ELECT", "false")]).unwrap(), None);
        let s = from(&[
            ("LEADER_ELECT", "true"),
            ("POD_NAMESPACE", "ops"),
            ("POD_NAME", "op-1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.lease_namespace, "ops");
        assert_eq!(s.identity, "op-1");
        assert_eq!(s.lease_name, "voicechat-operator");
        assert_eq!(
            (s.lease_duration, s.renew_deadline, s.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
    }

    #[test]
    fn durations_that_cannot_work_are_refused_naming_the_variable() {
        let on = [("LEADER_ELECT", "true"), ("POD_NAMESPACE", "ops")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = on.to_vec();
            vars.extend_from_slice(extra);
            from(&vars).unwrap_err().to_string()
        };
        let e = with(&[
            ("LEASE_DURATION_SECONDS", "10"),
            ("RENEW_DEADLINE_SECONDS", "10"),
        ]);
        assert!(
            e.contains("RENEW_DEADLINE_SECONDS")
                && e.contains("shorter than LEASE_DURATION_SECONDS"),
            "{e}"
        );
        let e = with(&[("RETRY_PERIOD_SECONDS", "10")]);
        assert!(e.contains("RETRY_PERIOD_SECONDS"), "{e}");
        let e = with(&[("LEASE_DURATION_SECONDS", "0")]);
        assert!(e.contains("LEASE_DURATION_SECONDS"), "{e}");
        let e = from(&[("LEADER_ELECT", "true")]).unwrap_err().to_string();
        assert!(e.contains("LEASE_NAMESPACE"), "{e}");
        let e = from(&[("LEADER_ELECT", "yes")]).unwrap_err().to_string();
        assert!(e.contains("LEADER_ELECT"), "{e}");
    }
}
