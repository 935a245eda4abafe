//! What CDS and LDS resources are between states, for `/config_dump`: Envoy
//! shows a cluster that warms under `dynamic_warming_clusters` (its namesake,
//! if one ran, stays under `dynamic_active_clusters`), and a listener as
//! `active_state`, `warming_state` and `draining_state` at once.
//!
//! `AppliedState::resources` holds the latest accepted resource of each name,
//! what the next update is compared with; this keeps the rest: which names
//! warm (LDS's own warming; CDS's is the cluster manager's), what still serves
//! under a warming name, and the listeners replaced or removed until their
//! drain ends. It is boxed into the state only once CDS or LDS needs it, so
//! the many EDS and RDS states pay one pointer.

use std::collections::HashSet;

use tokio::sync::watch;

use super::{AppliedResource, AppliedResources, AppliedState};
use crate::network::DrainPhase;

#[derive(Debug, Default)]
pub struct Transitions {
    /// Names whose latest resource is still warming (LDS only).
    pub warming: HashSet<String>,
    /// What serves under a warming name while it warms, if anything did.
    pub superseded: AppliedResources,
    /// Listeners replaced or removed, oldest first, until their drain ends.
    pub draining: Vec<Draining>,
}

/// A replaced or removed listener as it was applied, and its drain.
#[derive(Debug)]
pub struct Draining {
    pub name: String,
    pub resource: AppliedResource,
    pub drain: watch::Receiver<DrainPhase>,
    /// Replaced in place (only filter chains changed): only the chains its
    /// successor lacks drain, and Envoy shows no `draining_state` for it.
    pub in_place: bool,
}

impl Draining {
    /// Whether its drain time is still running (Envoy then destroys it).
    pub fn is_draining(&self) -> bool {
        *self.drain.borrow() == DrainPhase::Draining
    }
}

impl AppliedState {
    pub fn transitions(&self) -> Option<&Transitions> {
        self.transitions.as_deref()
    }

    pub fn transitions_mut(&mut self) -> &mut Transitions {
        self.transitions.get_or_insert_with(Box::default)
    }

    /// What serves under `name` now, by the bookkeeping of warming: what it
    /// superseded while its latest warms, else the latest.
    pub fn serving(&self, name: &str) -> Option<&AppliedResource> {
        match self.transitions().filter(|t| t.warming.contains(name)) {
            Some(t) => t.superseded.get(name),
            None => self.resources.get(name),
        }
    }

    /// The listeners replaced or removed whose drain time still runs, oldest first.
    pub fn draining(&self) -> impl Iterator<Item = &Draining> {
        self.transitions().map_or(&[][..], |t| &t.draining).iter().filter(|d| d.is_draining())
    }

    /// `name`'s latest resource, while it warms.
    pub fn warming(&self, name: &str) -> Option<&AppliedResource> {
        self.transitions().filter(|t| t.warming.contains(name)).and(self.resources.get(name))
    }

    /// `name`'s latest resource starts warming: what serves meanwhile is kept.
    pub fn start_warming(&mut self, name: &str) {
        if self.transitions().is_some_and(|t| t.warming.contains(name)) {
            return;
        }
        let serving = self.resources.get(name).cloned();
        let t = self.transitions_mut();
        t.warming.insert(name.to_string());
        match serving {
            Some(s) => t.superseded.insert(name.to_string(), s),
            None => {
                t.superseded.remove(name);
            }
        }
    }

    /// `name` no longer warms: its latest serves, or it was removed.
    pub fn end_warming(&mut self, name: &str) {
        if let Some(t) = self.transitions.as_deref_mut() {
            t.warming.remove(name);
            t.superseded.remove(name);
        }
    }

    /// `old`, which served under `name`, drains while `drain` says so; the
    /// drains that ended are let go of.
    pub fn add_draining(
        &mut self,
        name: &str,
        old: AppliedResource,
        drain: watch::Receiver<DrainPhase>,
        in_place: bool,
    ) {
        let t = self.transitions_mut();
        t.draining.retain(Draining::is_draining);
        t.draining.push(Draining { name: name.to_string(), resource: old, drain, in_place });
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn applied(version: &str) -> AppliedResource {
        AppliedResource { encoded: Vec::new(), version_info: version.into(), last_updated: SystemTime::UNIX_EPOCH }
    }

    #[test]
    fn a_warming_update_keeps_what_serves_until_it_ends() {
        let mut s = AppliedState::default();
        assert!(s.transitions().is_none(), "nothing allocated before it is needed");
        s.resources.insert("l".into(), applied("1"));
        s.start_warming("l");
        s.resources.insert("l".into(), applied("2"));
        assert_eq!(s.serving("l").map(|r| r.version_info.as_str()), Some("1"));
        // A second warming update: version 1 still serves.
        s.start_warming("l");
        s.resources.insert("l".into(), applied("3"));
        assert_eq!(s.serving("l").map(|r| r.version_info.as_str()), Some("1"));
        s.end_warming("l");
        assert_eq!(s.serving("l").map(|r| r.version_info.as_str()), Some("3"));
        // A new name warms with nothing serving.
        s.start_warming("n");
        s.resources.insert("n".into(), applied("1"));
        assert!(s.serving("n").is_none());
    }

    #[test]
    fn drains_that_ended_are_let_go_of() {
        let mut s = AppliedState::default();
        let (tx, rx) = watch::channel(DrainPhase::Draining);
        s.add_draining("l", applied("1"), rx.clone(), false);
        tx.send_replace(DrainPhase::CloseIdle);
        s.add_draining("l", applied("2"), watch::channel(DrainPhase::Draining).1, true);
        let left: Vec<_> = s
            .transitions()
            .map(|t| t.draining.iter().map(|d| d.resource.version_info.clone()).collect())
            .unwrap_or_default();
        assert_eq!(left, vec!["2".to_string()]);
    }
}
