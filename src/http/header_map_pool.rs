//! A worker's spare header maps.
//!
//! Every proxied request parses two header maps (the request's and the
//! upstream response's), and an `http::HeaderMap` costs two allocations and
//! their initialisation. Once a message is done with (its head written), its
//! map is cleared and kept here, and the next parse takes it: a busy worker
//! cycles the same few maps. Thread-local, as `common::buffer_pool` is.

use http::HeaderMap;

use crate::common::spare_list::SpareList;

/// Most spare maps a worker keeps.
const MAX_SPARE: usize = 64;

/// The largest map kept: one that grew past this many headers is freed.
const MAX_KEPT_CAPACITY: usize = 128;

thread_local! {
    static SPARE: SpareList<HeaderMap> = const { SpareList::new(MAX_SPARE) };
}

/// An empty map with room for `capacity` headers: a spare one, or a new one.
pub fn take(capacity: usize) -> HeaderMap {
    match SPARE.with(SpareList::take) {
        Some(mut map) => {
            map.reserve(capacity);
            map
        }
        None => HeaderMap::with_capacity(capacity),
    }
}

/// Keeps `map`, emptied, for the next message parsed on this worker.
pub fn give_back(mut map: HeaderMap) {
    if map.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    map.clear();
    SPARE.with(|s| s.keep(map));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_given_back_comes_back_empty_with_room() {
        let mut map = take(4);
        map.insert("x-a", "1".parse().expect("value"));
        give_back(map);
        let map = take(20);
        assert!(map.is_empty());
        assert!(map.capacity() >= 20);
    }
}
