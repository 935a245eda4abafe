//! Worker threads: each runs its own dispatcher (event loop) until told to exit.
//! Everything a worker serves — listeners, connections, its thread-local cluster
//! manager — is created on it by posted closures.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::watchdog::GuardDog;
use crate::event::{Dispatcher, DispatcherHandle};

pub struct Worker {
    pub dispatcher: DispatcherHandle,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `worker_<index>` with its loop running and watched by `guard_dog`.
    pub fn start(index: usize, guard_dog: &Arc<GuardDog>) -> std::io::Result<Worker> {
        let name = format!("worker_{index}");
        let dog = guard_dog.create_watchdog(&name);
        // The loop is built on its own thread: a LocalSet never crosses threads.
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new().name(name.clone()).spawn(move || match Dispatcher::new(&name) {
            Ok(dispatcher) => {
                let _ = tx.send(Ok(dispatcher.handle()));
                dispatcher.run(Some(dog), std::future::pending());
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })?;
        let handle = rx.recv().map_err(|_| std::io::Error::other("worker thread died at start"))??;
        Ok(Worker { dispatcher: handle, thread: Some(thread) })
    }

    /// Asks the loop to exit (dropping its connections) and waits for the thread.
    pub fn stop(&mut self) {
        self.dispatcher.exit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
