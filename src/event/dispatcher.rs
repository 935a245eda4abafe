//! One thread's event loop: a tokio current-thread runtime plus a `LocalSet`, so
//! everything spawned on it stays on this thread and may use `Rc`/`RefCell`.
//!
//! `DispatcherHandle::post` is the only way in from other threads (DESIGN.md §1):
//! a closure sent over a channel and run on the loop between other events. Closures
//! run in the `LocalSet`, so they may `spawn_local` connection tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::LocalSet;

type Posted = Box<dyn FnOnce() + Send>;

/// What a loop touches from a timer of its own to show it is alive: the server's
/// `WatchDog`, which the guard dog reads. A trait here, so the event loop needs
/// nothing from the server that runs it.
pub trait LoopWatch: Send + Sync {
    fn touch(&self);
    fn touch_interval(&self) -> Duration;
}

/// The thread-safe side of a dispatcher: post work to it, or ask it to exit.
#[derive(Clone, Debug)]
pub struct DispatcherHandle {
    name: Arc<str>,
    tx: mpsc::UnboundedSender<Posted>,
    exit: Arc<Notify>,
}

impl DispatcherHandle {
    /// Runs `f` on the dispatcher's thread. Returns false if the loop has exited.
    pub fn post(&self, f: impl FnOnce() + Send + 'static) -> bool {
        self.tx.send(Box::new(f)).is_ok()
    }

    /// Makes `Dispatcher::run` return after the callback running now.
    pub fn exit(&self) {
        self.exit.notify_one();
    }

    /// The thread's name (`main_thread`, `worker_0`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The loop itself; owned by and run on its thread.
pub struct Dispatcher {
    handle: DispatcherHandle,
    rx: mpsc::UnboundedReceiver<Posted>,
    runtime: tokio::runtime::Runtime,
    local: LocalSet,
}

impl Dispatcher {
    pub fn new(name: &str) -> std::io::Result<Dispatcher> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Dispatcher {
            handle: DispatcherHandle { name: name.into(), tx, exit: Arc::new(Notify::new()) },
            rx,
            runtime,
            local: LocalSet::new(),
        })
    }

    pub fn handle(&self) -> DispatcherHandle {
        self.handle.clone()
    }

    /// Runs posted callbacks, spawned tasks and `main` until `exit()` is called or
    /// `main` finishes. When `watchdog` is given, a timer touches it so the guard
    /// dog can tell a live loop from a stuck one.
    pub fn run<F: Future<Output = ()>>(self, watchdog: Option<Arc<dyn LoopWatch>>, main: F) {
        let Dispatcher { handle, mut rx, runtime, local } = self;
        local.block_on(&runtime, async move {
            tokio::task::spawn_local(async move {
                while let Some(cb) = rx.recv().await {
                    cb();
                }
            });
            if let Some(dog) = watchdog {
                tokio::task::spawn_local(async move {
                    let mut tick = tokio::time::interval(dog.touch_interval());
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        dog.touch();
                    }
                });
            }
            tokio::select! {
                _ = handle.exit.notified() => {}
                _ = main => {}
            }
        });
    }
}
