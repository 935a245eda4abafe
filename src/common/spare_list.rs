//! A thread's spare objects of one kind, kept for reuse up to a cap: what
//! `buffer_pool` and `http::header_map_pool` hold in a `thread_local!` each.

use std::cell::RefCell;

/// Up to `max` spare `T`s; one given back past the cap is dropped.
#[derive(Debug)]
pub struct SpareList<T> {
    items: RefCell<Vec<T>>,
    max: usize,
}

impl<T> SpareList<T> {
    pub const fn new(max: usize) -> SpareList<T> {
        SpareList { items: RefCell::new(Vec::new()), max }
    }

    /// The most recently kept spare, if any.
    pub fn take(&self) -> Option<T> {
        self.items.borrow_mut().pop()
    }

    /// Keeps `item` for the next `take`, or drops it when the list is full.
    pub fn keep(&self, item: T) {
        let mut items = self.items.borrow_mut();
        if items.len() < self.max {
            items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_its_cap_and_gives_back_the_latest_first() {
        let list = SpareList::new(2);
        list.keep(1);
        list.keep(2);
        list.keep(3);
        assert_eq!(list.take(), Some(2));
        assert_eq!(list.take(), Some(1));
        assert_eq!(list.take(), None);
    }
}
