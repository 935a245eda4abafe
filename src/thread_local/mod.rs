//! Thread-local storage slots (Envoy's `ThreadLocal::Instance`).
//!
//! The main thread allocates a slot and publishes into it by posting to every
//! registered dispatcher; each thread then holds its own `Rc<T>` and reads it with
//! no lock. A new snapshot is published by `set` again (RCU style: readers that
//! still hold the old `Rc` finish with it), or updated in place with
//! `run_on_all_threads`.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::event::DispatcherHandle;

thread_local! {
    static SLOTS: RefCell<Vec<Option<Rc<dyn Any>>>> = const { RefCell::new(Vec::new()) };
}

/// The set of threads that slots publish to (main thread plus workers).
#[derive(Clone, Default)]
pub struct ThreadLocalRegistry {
    threads: Arc<Mutex<Vec<DispatcherHandle>>>,
    next_slot: Arc<AtomicUsize>,
}

impl ThreadLocalRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a thread; slots set after this reach it. Register all threads before
    /// setting slots, as Envoy does during start-up.
    pub fn register_thread(&self, dispatcher: DispatcherHandle) {
        self.lock().push(dispatcher);
    }

    /// A new, empty slot holding a `T` per thread.
    pub fn allocate_slot<T: 'static>(&self) -> Slot<T> {
        Slot { index: self.next_slot.fetch_add(1, Ordering::Relaxed), registry: self.clone(), _t: PhantomData }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<DispatcherHandle>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post_all(&self, f: Arc<dyn Fn() + Send + Sync>) {
        for d in self.lock().iter() {
            let f = f.clone();
            d.post(move || f());
        }
    }

    /// `post_all`, then `done` once every thread has run `f` (on the last of
    /// them), as Envoy's `runOnAllThreads(cb, all_threads_complete_cb)`.
    fn post_all_then(&self, f: Arc<dyn Fn() + Send + Sync>, done: Box<dyn FnOnce() + Send>) {
        let threads = self.lock();
        if threads.is_empty() {
            drop(threads);
            done();
            return;
        }
        let remaining = Arc::new(AtomicUsize::new(threads.len()));
        let done = Arc::new(Mutex::new(Some(done)));
        for d in threads.iter() {
            let (f, remaining, done) = (f.clone(), remaining.clone(), done.clone());
            d.post(move || {
                f();
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    if let Some(done) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        done();
                    }
                }
            });
        }
    }
}

/// A typed slot. `T` lives on each thread and never crosses threads.
pub struct Slot<T> {
    index: usize,
    registry: ThreadLocalRegistry,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({})", self.index)
    }
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot { index: self.index, registry: self.registry.clone(), _t: PhantomData }
    }
}

impl<T: 'static> Slot<T> {
    /// Builds a fresh `T` on every thread with `init`, replacing the previous one.
    pub fn set(&self, init: impl Fn() -> T + Send + Sync + 'static) {
        let index = self.index;
        self.registry.post_all(Arc::new(move || {
            let value: Rc<dyn Any> = Rc::new(init());
            SLOTS.with(|slots| {
                let mut slots = slots.borrow_mut();
                if slots.len() <= index {
                    slots.resize(index + 1, None);
                }
                slots[index] = Some(value);
            });
        }));
    }

    /// Stores `value` as this thread's `T` directly, for a thread no dispatcher
    /// runs (a unit test standing in for a worker).
    pub fn set_here(&self, value: T) {
        let value: Rc<dyn Any> = Rc::new(value);
        SLOTS.with(|slots| {
            let mut slots = slots.borrow_mut();
            if slots.len() <= self.index {
                slots.resize(self.index + 1, None);
            }
            slots[self.index] = Some(value);
        });
    }

    /// Runs `f` on every thread with that thread's `T` (skipped where unset).
    pub fn run_on_all_threads(&self, f: impl Fn(&T) + Send + Sync + 'static) {
        let slot = self.clone_local();
        self.registry.post_all(Arc::new(move || {
            if let Some(v) = slot.get() {
                f(&v);
            }
        }));
    }

    /// `run_on_all_threads`, then `done` once every thread has run `f`: what
    /// waits for all workers to have a new value (a gauge that says so).
    pub fn run_on_all_threads_then(
        &self,
        f: impl Fn(&T) + Send + Sync + 'static,
        done: impl FnOnce() + Send + 'static,
    ) {
        let slot = self.clone_local();
        self.registry.post_all_then(
            Arc::new(move || {
                if let Some(v) = slot.get() {
                    f(&v);
                }
            }),
            Box::new(done),
        );
    }

    /// This thread's `T`, if the slot was set here.
    pub fn get(&self) -> Option<Rc<T>> {
        Self::get_at(self.index)
    }

    /// `None` also while the thread is exiting and its slots are gone: what
    /// a connection dropped then reads (a breaker's runtime maximum) falls back to
    /// its default instead of panicking in a destructor, which aborts.
    fn get_at(index: usize) -> Option<Rc<T>> {
        SLOTS
            .try_with(|slots| {
                let slot = slots.borrow().get(index).cloned().flatten()?;
                slot.downcast::<T>().ok()
            })
            .ok()
            .flatten()
    }

    fn clone_local(&self) -> LocalSlot<T> {
        LocalSlot { index: self.index, _t: PhantomData }
    }

    /// The slot's index, for a slot readers find through a process-wide value
    /// (the runtime's, as Envoy's `LoaderSingleton`) rather than a handle.
    pub fn index(&self) -> usize {
        self.index
    }
}

/// The index of a slot without the registry, cheap to move into posted closures.
pub struct LocalSlot<T> {
    index: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: 'static> LocalSlot<T> {
    /// The slot at `index` (see `Slot::index`).
    pub fn at(index: usize) -> Self {
        LocalSlot { index, _t: PhantomData }
    }

    pub fn get(&self) -> Option<Rc<T>> {
        Slot::<T>::get_at(self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Dispatcher;

    /// `done` runs once, after every thread ran `f` with its value.
    #[test]
    fn run_on_all_threads_then_completes_after_every_thread() {
        let registry = ThreadLocalRegistry::new();
        let mut joins = Vec::new();
        let mut handles = Vec::new();
        for i in 0..2 {
            let (htx, hrx) = std::sync::mpsc::channel();
            joins.push(std::thread::spawn(move || {
                let d = Dispatcher::new(&format!("t{i}")).expect("dispatcher");
                let _ = htx.send(d.handle());
                d.run(None, std::future::pending::<()>());
            }));
            let h = hrx.recv().expect("handle");
            registry.register_thread(h.clone());
            handles.push(h);
        }
        let slot = registry.allocate_slot::<u32>();
        slot.set(|| 1);
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = ran.clone();
        slot.run_on_all_threads_then(
            move |v| {
                seen.fetch_add(*v as usize, Ordering::SeqCst);
            },
            {
                let ran = ran.clone();
                move || {
                    let _ = tx.send(ran.load(Ordering::SeqCst));
                }
            },
        );
        let at_done = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("done ran");
        assert_eq!(at_done, 2, "both threads had run f");
        assert!(rx.recv_timeout(std::time::Duration::from_millis(50)).is_err(), "done ran once");
        for h in &handles {
            h.exit();
        }
        for j in joins {
            j.join().expect("thread");
        }
    }
}
