//! Load balancers. Each worker owns its own instance, so round robin is exact only
//! per worker (DESIGN.md §1) and needs no synchronisation.

use std::cell::Cell;
use std::sync::Arc;

use super::host::Host;

/// `ROUND_ROBIN` over equally weighted hosts.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: Cell<usize>,
}

impl RoundRobin {
    pub fn choose<'a>(&self, hosts: &'a [Arc<Host>]) -> Option<&'a Arc<Host>> {
        if hosts.is_empty() {
            return None;
        }
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        hosts.get(i % hosts.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_through_hosts() {
        let hosts: Vec<_> =
            (1..=3).map(|p| Host::new(format!("127.0.0.1:{p}").parse().expect("addr"), String::new())).collect();
        let rr = RoundRobin::default();
        let picked: Vec<u16> = (0..6).filter_map(|_| rr.choose(&hosts)).map(|h| h.address.port()).collect();
        assert_eq!(picked, vec![1, 2, 3, 1, 2, 3]);
        assert!(rr.choose(&[]).is_none());
    }
}
