//! The immutable state a request is served with. Requests read the current snapshot through
//! `arc-swap` once, at their start, so a reload (which builds and validates a whole new snapshot,
//! then swaps it in) never shows a request half of the old state and half of the new.

use std::net::IpAddr;

use crate::config::Config;

pub struct Snapshot {
    pub config: Config,
}

impl Snapshot {
    pub fn new(config: Config) -> Self {
        Snapshot { config }
    }

    /// Whether `ip` is one of `forwarding.trusted_proxies`.
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.config
            .forwarding
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}
