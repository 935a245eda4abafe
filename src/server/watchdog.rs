//! The guard dog (Envoy's `GuardDogImpl`): every dispatcher touches its `WatchDog`
//! from a timer on its own loop; a separate thread checks how long ago each was
//! touched and counts misses (`miss_timeout`) and mega-misses (`megamiss_timeout`),
//! and aborts the process when one thread (`kill_timeout`) or several threads
//! (`multikill_timeout`, `multikill_threshold` percent) stay stuck.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::bootstrap::v3::Watchdog as WatchdogProto;

use crate::config;
use crate::event::LoopWatch;
use crate::stats::{Counter, Store};

/// Timeouts of one guard dog, with Envoy's defaults.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    pub miss: Duration,
    pub megamiss: Duration,
    /// Zero disables.
    pub kill: Duration,
    /// Zero disables.
    pub multikill: Duration,
    /// Percent of watched threads that must be stuck for a multikill.
    pub multikill_threshold: f64,
}

impl WatchdogConfig {
    pub fn from_proto(p: Option<&WatchdogProto>) -> Self {
        let d = |v: &Option<envoy_types::pb::google::protobuf::Duration>, default| config::duration_or(v, default);
        match p {
            None => Self::default(),
            Some(p) => WatchdogConfig {
                miss: d(&p.miss_timeout, Duration::from_millis(200)),
                megamiss: d(&p.megamiss_timeout, Duration::from_millis(1000)),
                kill: d(&p.kill_timeout, Duration::ZERO),
                multikill: d(&p.multikill_timeout, Duration::ZERO),
                multikill_threshold: p.multikill_threshold.as_ref().map(|t| t.value).unwrap_or(0.0),
            },
        }
    }

    /// How often the guard dog looks: often enough to see the shortest timeout.
    fn loop_interval(&self) -> Duration {
        [self.miss, self.megamiss, self.kill, self.multikill]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(Duration::from_millis(200))
            / 2
    }
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            miss: Duration::from_millis(200),
            megamiss: Duration::from_millis(1000),
            kill: Duration::ZERO,
            multikill: Duration::ZERO,
            multikill_threshold: 0.0,
        }
    }
}

/// One watched thread. The dispatcher calls `touch` from a timer on its loop.
#[derive(Debug)]
pub struct WatchDog {
    thread_name: String,
    epoch: Instant,
    last_touch_ms: AtomicU64,
    touch_interval: Duration,
    miss: Arc<Counter>,
    megamiss: Arc<Counter>,
    miss_alerted: AtomicBool,
    megamiss_alerted: AtomicBool,
}

impl LoopWatch for WatchDog {
    fn touch(&self) {
        self.last_touch_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn touch_interval(&self) -> Duration {
        self.touch_interval
    }
}

impl WatchDog {
    fn since_touch(&self) -> Duration {
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_touch_ms.load(Ordering::Relaxed)))
    }
}

/// The guard dog for a set of threads (Envoy has one for the main thread and one
/// for the workers); its stats are `<scope>.watchdog_miss` and per thread
/// `server.<thread>.watchdog_miss`.
pub struct GuardDog {
    config: WatchdogConfig,
    epoch: Instant,
    dogs: Mutex<Vec<Arc<WatchDog>>>,
    miss: Arc<Counter>,
    megamiss: Arc<Counter>,
    store: Arc<Store>,
    stop: AtomicBool,
}

impl GuardDog {
    pub fn new(config: WatchdogConfig, scope: &str, store: Arc<Store>) -> Arc<GuardDog> {
        Arc::new(GuardDog {
            epoch: Instant::now(),
            miss: store.counter(&format!("{scope}.watchdog_miss")),
            megamiss: store.counter(&format!("{scope}.watchdog_mega_miss")),
            config,
            dogs: Mutex::new(Vec::new()),
            store,
            stop: AtomicBool::new(false),
        })
    }

    /// A watchdog for `thread_name`, touched now.
    pub fn create_watchdog(&self, thread_name: &str) -> Arc<WatchDog> {
        let dog = Arc::new(WatchDog {
            thread_name: thread_name.to_string(),
            epoch: self.epoch,
            last_touch_ms: AtomicU64::new(0),
            touch_interval: self.config.miss.min(self.config.megamiss) / 4,
            miss: self.store.counter(&format!("server.{thread_name}.watchdog_miss")),
            megamiss: self.store.counter(&format!("server.{thread_name}.watchdog_mega_miss")),
            miss_alerted: AtomicBool::new(false),
            megamiss_alerted: AtomicBool::new(false),
        });
        dog.touch();
        self.dogs.lock().unwrap_or_else(|e| e.into_inner()).push(dog.clone());
        dog
    }

    /// Starts the checking thread; it runs until `stop`.
    pub fn start(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let gd = self.clone();
        std::thread::Builder::new().name("guarddog".into()).spawn(move || {
            let interval = gd.config.loop_interval();
            while !gd.stop.load(Ordering::Relaxed) {
                std::thread::sleep(interval);
                gd.step();
            }
        })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// One check of every watched thread.
    fn step(&self) {
        let dogs = self.dogs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut multikill_stuck = 0usize;
        for dog in &dogs {
            let since = dog.since_touch();
            alert(since > self.config.miss, &dog.miss_alerted, [&self.miss, &dog.miss]);
            alert(since > self.config.megamiss, &dog.megamiss_alerted, [&self.megamiss, &dog.megamiss]);
            if !self.config.kill.is_zero() && since > self.config.kill {
                tracing::error!("watchdog: thread {} stuck for {since:?}; aborting (kill_timeout)", dog.thread_name);
                std::process::abort();
            }
            if !self.config.multikill.is_zero() && since > self.config.multikill {
                multikill_stuck += 1;
            }
        }
        if multikill_stuck > 0 && !dogs.is_empty() {
            let percent = 100.0 * multikill_stuck as f64 / dogs.len() as f64;
            if multikill_stuck >= 2 && percent >= self.config.multikill_threshold {
                tracing::error!("watchdog: {multikill_stuck} threads stuck; aborting (multikill_timeout)");
                std::process::abort();
            }
        }
    }
}

/// Counts once per stall: the flag re-arms when the thread touches again.
fn alert(stuck: bool, alerted: &AtomicBool, counters: [&Counter; 2]) {
    if stuck {
        if !alerted.swap(true, Ordering::Relaxed) {
            for c in counters {
                c.inc();
            }
        }
    } else {
        alerted.store(false, Ordering::Relaxed);
    }
}
