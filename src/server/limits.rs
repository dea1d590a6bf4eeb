//! Connection limits with Kafka's names and semantics (`ConnectionQuotas`):
//!
//! - `max.connections`: at the limit the listener stops accepting until a connection
//!   closes; new connections wait in the kernel's backlog (Kafka's acceptor blocks the
//!   same way, though it holds one accepted socket while it waits; Jet waits before
//!   `accept`, so a waiting connection costs no file descriptor).
//! - `max.connections.per.ip` and `max.connections.per.ip.overrides`: a connection from
//!   an address that already has its maximum is closed right after `accept`.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::KafkaSettings;

/// Least time between two log lines about refused connections.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Parses `max.connections.per.ip.overrides` (`host:count,...`; hosts by name or
/// address, names resolved now, as Kafka does when the config is set).
pub fn parse_overrides(text: &str) -> Result<HashMap<IpAddr, usize>, String> {
    let mut out = HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: String| format!("max.connections.per.ip.overrides: `{entry}`: {why}");
        let (host, count) = entry.rsplit_once(':').ok_or_else(|| bad("expected host:count".into()))?;
        let count: usize = count.trim().parse().map_err(|e| bad(format!("bad count: {e}")))?;
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                out.insert(ip, count);
            }
            Err(_) => {
                let addrs = (host, 0).to_socket_addrs().map_err(|e| bad(format!("cannot resolve `{host}`: {e}")))?;
                for addr in addrs {
                    out.insert(addr.ip(), count);
                }
            }
        }
    }
    Ok(out)
}

/// Why a connection was closed right after it was accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("address {ip} already has the configured maximum of {max} connections (max.connections.per.ip)")]
pub struct TooManyConnections {
    pub ip: IpAddr,
    pub max: usize,
}

/// Open connections, in total and per address.
pub struct ConnectionLimits {
    slots: Arc<Semaphore>,
    per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    open_by_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    refusals: Mutex<RefusalLog>,
}

#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unreported: u64,
}

/// A place under `max.connections`, taken before `accept`.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// An admitted connection; gives its places back when dropped.
pub struct ConnectionGuard {
    _slot: Slot,
    ip: IpAddr,
    open_by_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut open = self.open_by_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn as_count(v: i64) -> usize {
    usize::try_from(v.max(0)).unwrap_or(usize::MAX)
}

impl ConnectionLimits {
    pub fn new(max_total: usize, per_ip: usize, overrides: HashMap<IpAddr, usize>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_total.min(Semaphore::MAX_PERMITS))),
            per_ip,
            overrides,
            open_by_ip: Arc::default(),
            refusals: Mutex::default(),
        }
    }

    /// From the broker settings (already validated at start-up).
    pub fn from_settings(settings: &KafkaSettings) -> Result<Self, String> {
        let overrides = parse_overrides(&settings.max_connections_per_ip_overrides)?;
        Ok(Self::new(as_count(settings.max_connections), as_count(settings.max_connections_per_ip), overrides))
    }

    /// Waits for a place under `max.connections`.
    pub async fn wait_for_slot(&self) -> Slot {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Slot { _permit: permit };
        }
        tracing::info!("max.connections reached; new connections wait until one closes");
        // The semaphore is never closed.
        loop {
            if let Ok(permit) = self.slots.clone().acquire_owned().await {
                return Slot { _permit: permit };
            }
        }
    }

    /// The per-address limit for `ip`.
    pub fn max_for(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.per_ip)
    }

    /// Admits an accepted connection from `ip`, or refuses it when its address is at
    /// its maximum (the caller closes it).
    pub fn admit(&self, ip: IpAddr, slot: Slot) -> Result<ConnectionGuard, TooManyConnections> {
        let max = self.max_for(ip);
        let mut open = self.open_by_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            if *n == 0 {
                open.remove(&ip);
            }
            drop(open);
            self.log_refusal(ip, max);
            return Err(TooManyConnections { ip, max });
        }
        *n += 1;
        Ok(ConnectionGuard { _slot: slot, ip, open_by_ip: self.open_by_ip.clone() })
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open_by_ip.lock().map(|m| m.get(&ip).copied().unwrap_or(0)).unwrap_or(0)
    }

    fn log_refusal(&self, ip: IpAddr, max: usize) {
        let mut log = self.refusals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        log.unreported += 1;
        let now = Instant::now();
        if log.last.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY) {
            let refused = std::mem::take(&mut log.unreported);
            log.last = Some(now);
            tracing::info!(
                %ip,
                max,
                refused,
                "rejected connection: address already has the configured maximum of connections (max.connections.per.ip)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overrides_parse_addresses_names_and_reject_garbage() {
        let o = parse_overrides("10.0.0.1:5, [::1]:7,localhost:3").unwrap();
        assert_eq!(o[&ip("10.0.0.1")], 5);
        assert_eq!(o[&ip("127.0.0.1")], 3);
        assert!(o.contains_key(&ip("::1")));
        assert!(parse_overrides("").unwrap().is_empty());
        assert!(parse_overrides("10.0.0.1").is_err());
        assert!(parse_overrides("10.0.0.1:x").is_err());
    }

    #[tokio::test]
    async fn per_ip_limit_refuses_at_once_and_frees_on_close() {
        let limits = ConnectionLimits::new(100, 2, HashMap::from([(ip("10.0.0.9"), 0)]));
        let a = limits.admit(ip("10.0.0.1"), limits.wait_for_slot().await).unwrap();
        let _b = limits.admit(ip("10.0.0.1"), limits.wait_for_slot().await).unwrap();
        let refused = limits.admit(ip("10.0.0.1"), limits.wait_for_slot().await);
        assert_eq!(refused.err(), Some(TooManyConnections { ip: ip("10.0.0.1"), max: 2 }));
        // Another address is unaffected; an override of 0 refuses everything.
        assert!(limits.admit(ip("10.0.0.2"), limits.wait_for_slot().await).is_ok());
        assert!(limits.admit(ip("10.0.0.9"), limits.wait_for_slot().await).is_err());
        assert_eq!(limits.open_from(ip("10.0.0.9")), 0);
        drop(a);
        assert_eq!(limits.open_from(ip("10.0.0.1")), 1);
        assert!(limits.admit(ip("10.0.0.1"), limits.wait_for_slot().await).is_ok());
    }

    #[tokio::test]
    async fn max_connections_waits_for_a_slot() {
        let limits = Arc::new(ConnectionLimits::new(1, 10, HashMap::new()));
        let first = limits.admit(ip("10.0.0.1"), limits.wait_for_slot().await).unwrap();
        let l = limits.clone();
        let waiting = tokio::spawn(async move { l.wait_for_slot().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let slot = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("slot freed").unwrap();
        assert!(limits.admit(ip("10.0.0.1"), slot).is_ok());
    }
}
