//! Connection limits: all listeners together, per listener, and per client
//! IP. A slot is held by a guard and freed when the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct ConnLimiter {
    total: AtomicU32,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// Frees its slots on drop.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<ConnLimiter>,
    listener: Arc<AtomicU32>,
    ip: IpAddr,
}

impl ConnLimiter {
    pub fn new() -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter::default())
    }

    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Relaxed)
    }

    /// Takes a slot, or `None` when any limit is reached.
    pub fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        listener: &Arc<AtomicU32>,
        max_total: u32,
        max_listener: u32,
        max_per_ip: u32,
    ) -> Option<Slot> {
        let Ok(mut map) = self.per_ip.lock() else {
            return None;
        };
        let ip_count = map.get(&ip).copied().unwrap_or(0);
        if self.total.load(Ordering::Relaxed) >= max_total
            || listener.load(Ordering::Relaxed) >= max_listener
            || ip_count >= max_per_ip
        {
            return None;
        }
        map.insert(ip, ip_count + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        listener.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            limiter: self.clone(),
            listener: listener.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::Relaxed);
        self.listener.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut map) = self.limiter.per_ip.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let l = ConnLimiter::new();
        let lst = Arc::new(AtomicU32::new(0));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let s1 = l.acquire(a, &lst, 3, 10, 2).expect("slot");
        let s2 = l.acquire(a, &lst, 3, 10, 2).expect("slot");
        assert!(l.acquire(a, &lst, 3, 10, 2).is_none(), "per IP");
        let s3 = l.acquire(b, &lst, 3, 10, 2).expect("slot");
        assert!(l.acquire(b, &lst, 3, 10, 2).is_none(), "total");
        drop(s1);
        assert!(l.acquire(b, &lst, 3, 10, 2).is_some());
        drop((s2, s3));
        assert_eq!(l.total(), 0);
        assert_eq!(lst.load(Ordering::Relaxed), 0);
    }
}
