//! The event loop of one thread (Envoy's `Event::Dispatcher`), the timers
//! connections arm on it, and the isolated tasks connections run as.

mod dispatcher;
pub mod file_watcher;
pub mod isolated;
pub mod timer;

pub use dispatcher::{Dispatcher, DispatcherHandle, LoopWatch};
pub use isolated::{in_isolated_task, spawn_isolated, Isolated};
pub use timer::Timer;
