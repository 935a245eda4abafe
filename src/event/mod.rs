//! The event loop of one thread (Envoy's `Event::Dispatcher`) and the timers
//! connections arm on it.

mod dispatcher;
pub mod timer;

pub use dispatcher::{Dispatcher, DispatcherHandle, LoopWatch};
pub use timer::Timer;
