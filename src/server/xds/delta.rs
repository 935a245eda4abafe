//! Incremental xDS (Envoy's `NewGrpcMuxImpl` and `DeltaSubscriptionState`):
//! the protocol layer a `GrpcMux` speaks on a `Delta*` stream, in front of the
//! same watches as state of the world.
//!
//! Per type, what the accepted responses left is kept by name: each
//! resource's own version, and nothing of its body (the watches keep what
//! they applied; with 10,000 clusters their bodies here were ~3–6 MiB). A
//! delta response (resources added or changed, `removed_resources`) is
//! handed to its watch as a state-of-the-world response of its own
//! resources, with the names it removed beside it (`Watch::on_response`): a
//! wildcard watch (CDS, LDS) adds the response's resources to what it runs
//! and removes the names removed, as Envoy's (by the response's names, a
//! resource being added by its body's), so a refused one's `resources[i]` is
//! its place in the response; a watch that names its resources (EDS, RDS) is
//! handed the response's resources only, as Envoy calls only the watches a
//! response names, and then the names it removed (`Watch::on_removed`: EDS
//! takes an empty update, RDS ignores it, as Envoy's). Only an accepted
//! response changes what is kept. Requests subscribe and unsubscribe names
//! against what the stream was last told; a new stream's first request of a
//! type lists what is kept in `initial_resource_versions`, so the server
//! sends only what changed. ACKs and NACKs carry the response's nonce (and a
//! NACK its `error_detail`), not a version.

use std::collections::{BTreeMap, HashMap, HashSet};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryResponse,
};

/// One type's resources as accepted: each name's version.
type Versions = BTreeMap<String, String>;

/// A delta response as a state-of-the-world one of its own resources, and
/// what it leaves once accepted (`DeltaState::commit`).
pub struct Prepared {
    pub response: DiscoveryResponse,
    type_url: String,
    /// The response's resources: name and version (what `commit` keeps).
    pub versions: Vec<(String, String)>,
    /// The names the response removed (or sent without a body).
    pub removed: Vec<String>,
}

#[derive(Default)]
pub struct DeltaState {
    /// What each type's accepted responses left, kept across streams.
    accepted: HashMap<String, Versions>,
    /// The names each type subscribed on the current stream.
    subscribed: HashMap<String, Vec<String>>,
}

impl DeltaState {
    /// A new stream: nothing is subscribed on it yet.
    pub fn new_stream(&mut self) {
        self.subscribed.clear();
    }

    /// The first request of a type on a stream: its names (none for a
    /// wildcard, as Envoy's legacy wildcard subscription) and the versions
    /// of what is kept of them. None for a type that names nothing now (an
    /// empty list would be a wildcard): its names go out when it has some.
    pub fn first_request(
        &mut self,
        type_url: &str,
        names: Vec<String>,
        wildcard: bool,
    ) -> Option<DeltaDiscoveryRequest> {
        let accepted = self.accepted.entry(type_url.to_string()).or_default();
        if !wildcard {
            let named: HashSet<&String> = names.iter().collect();
            accepted.retain(|name, _| named.contains(name));
        }
        if !wildcard && names.is_empty() {
            self.subscribed.insert(type_url.to_string(), Vec::new());
            return None;
        }
        let initial_resource_versions =
            accepted.iter().map(|(name, version)| (name.clone(), version.clone())).collect();
        self.subscribed.insert(type_url.to_string(), names.clone());
        Some(DeltaDiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names_subscribe: names,
            initial_resource_versions,
            ..Default::default()
        })
    }

    /// The names of a type changed: the request subscribing the new ones and
    /// unsubscribing the gone ones (whose kept resources are forgotten), if
    /// any changed since the stream was last told.
    pub fn names_changed(&mut self, type_url: &str, names: Vec<String>) -> Option<DeltaDiscoveryRequest> {
        let before = self.subscribed.insert(type_url.to_string(), names.clone()).unwrap_or_default();
        // Sets: a type may name thousands (EDS's clusters).
        let (was, now): (HashSet<&String>, HashSet<&String>) = (before.iter().collect(), names.iter().collect());
        let subscribe: Vec<String> = names.iter().filter(|n| !was.contains(n)).cloned().collect();
        let unsubscribe: Vec<String> = before.iter().filter(|n| !now.contains(n)).cloned().collect();
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return None;
        }
        if let Some(accepted) = self.accepted.get_mut(type_url) {
            for name in &unsubscribe {
                accepted.remove(name);
            }
        }
        Some(DeltaDiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        })
    }

    /// The state-of-the-world response of `delta`'s own resources, which a
    /// watch takes with the names removed beside it.
    pub fn prepare(&self, delta: DeltaDiscoveryResponse) -> Prepared {
        let mut resources = Vec::with_capacity(delta.resources.len());
        let mut versions = Vec::with_capacity(delta.resources.len());
        let mut removed = delta.removed_resources;
        for r in delta.resources {
            // A resource without a body is one the server says does not exist.
            let Some(any) = r.resource else {
                removed.push(r.name);
                continue;
            };
            versions.push((r.name, r.version));
            resources.push(any);
        }
        let response = DiscoveryResponse {
            version_info: delta.system_version_info,
            resources,
            type_url: delta.type_url.clone(),
            nonce: delta.nonce,
            ..Default::default()
        };
        Prepared { response, type_url: delta.type_url, versions, removed }
    }

    /// Keeps what an accepted response left.
    pub fn commit(&mut self, prepared: Prepared) {
        let kept = self.accepted.entry(prepared.type_url).or_default();
        // In the response's order: a name both sent and removed is gone, as before.
        kept.extend(prepared.versions);
        for name in &prepared.removed {
            kept.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::Resource;
    use envoy_types::pb::google::protobuf::Any;

    fn resource(name: &str, version: &str) -> Resource {
        let any = Any { type_url: "t".into(), value: name.as_bytes().to_vec() };
        Resource { name: name.into(), version: version.into(), resource: Some(any), ..Default::default() }
    }

    #[test]
    fn a_watch_gets_the_responses_resources_and_removals() {
        let mut state = DeltaState::default();
        let first = DeltaDiscoveryResponse {
            type_url: "t".into(),
            resources: vec![resource("a", "1"), resource("b", "1")],
            ..Default::default()
        };
        let prepared = state.prepare(first);
        assert_eq!(prepared.response.resources.len(), 2);
        state.commit(prepared);
        let gone = Resource { name: "d".into(), ..Default::default() };
        let second = DeltaDiscoveryResponse {
            type_url: "t".into(),
            system_version_info: "2".into(),
            resources: vec![resource("c", "2"), gone],
            removed_resources: vec!["a".into()],
            ..Default::default()
        };
        let prepared = state.prepare(second);
        let names: Vec<&[u8]> = prepared.response.resources.iter().map(|a| a.value.as_slice()).collect();
        assert_eq!(names, [&b"c"[..]]);
        assert_eq!(prepared.removed, ["a", "d"], "a resource without a body is removed");
        assert_eq!(prepared.response.version_info, "2");
        // Not committed: a new stream still offers a and b.
        let request = state.first_request("t", Vec::new(), true).expect("a wildcard asks");
        assert_eq!(request.initial_resource_versions.len(), 2);
        state.commit(prepared);
        let request = state.first_request("t", Vec::new(), true).expect("a wildcard asks");
        let kept: BTreeMap<String, String> = request.initial_resource_versions.into_iter().collect();
        assert_eq!(kept, BTreeMap::from([("b".into(), "1".into()), ("c".into(), "2".into())]));
    }

    #[test]
    fn names_are_subscribed_and_unsubscribed_against_the_streams() {
        let mut state = DeltaState::default();
        assert!(state.first_request("e", Vec::new(), false).is_none(), "no names: nothing to ask");
        let first = state.first_request("e", vec!["x".into()], false).expect("a request");
        assert_eq!(first.resource_names_subscribe, ["x"]);
        assert!(state.names_changed("e", vec!["x".into()]).is_none());
        let changed = state.names_changed("e", vec!["y".into()]).expect("a request");
        assert_eq!(
            (changed.resource_names_subscribe, changed.resource_names_unsubscribe),
            (vec!["y".into()], vec!["x".into()])
        );
    }
}
