//! What a panic does in a running server. Courier's policy, in two parts:
//!
//! - in a connection's task (`event::isolated`), the panic is logged as an error
//!   with its thread, location and message, counted in `server.envoy_bug_failures`
//!   (Envoy's counter for a bug it survives: dashboards alert on it already), and
//!   only that connection is closed; the worker keeps serving the others. One
//!   malformed request that trips a bug must not take every other client down.
//! - anywhere else (a worker's posted callback, an accept loop, a cluster
//!   refresh, the main thread), state shared by many connections may be half
//!   updated, so the panic is logged and the process aborts, exiting non-zero as
//!   Envoy does on every panic; a supervisor restarts it.
//!
//! Installed once the server starts, not in `--mode validate` or in tests.

use std::panic::PanicHookInfo;
use std::sync::Arc;

use crate::event::in_isolated_task;
use crate::stats::Counter;

/// Installs the policy; `envoy_bug_failures` counts the panics survived.
pub fn install(envoy_bug_failures: Arc<Counter>) {
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed thread");
        let location = info.location().map_or_else(|| "an unknown place".to_string(), |l| l.to_string());
        let message = message(info);
        if in_isolated_task() {
            envoy_bug_failures.inc();
            tracing::error!("panic on {thread} at {location}: {message}; the connection is closed");
        } else {
            tracing::error!("panic on {thread} at {location}: {message}; aborting");
            eprintln!("courier: panic on {thread} at {location}: {message}; aborting");
            std::process::abort();
        }
    }));
}

fn message<'a>(info: &'a PanicHookInfo<'_>) -> &'a str {
    let payload = info.payload();
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;

    use super::*;
    use crate::event::Isolated;

    /// The hook is process-wide and may abort, so each case runs in a child: this
    /// test binary again, running only `child` with the case in the environment.
    fn run_child(case: &str) -> (std::process::ExitStatus, String) {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args(["--exact", "server::panic_hook::tests::child", "--ignored", "--nocapture", "--test-threads=1"])
            .env("COURIER_PANIC_HOOK_CASE", case)
            .output()
            .expect("run the child");
        (out.status, String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    }

    #[test]
    #[ignore = "run by the tests below, in a child process"]
    fn child() {
        let counter = Arc::new(Counter::default());
        install(counter.clone());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            match std::env::var("COURIER_PANIC_HOOK_CASE").as_deref() {
                Ok("connection") => {
                    let task = tokio::task::spawn_local(Isolated::new(async { panic!("bug in one connection") }));
                    assert!(task.await.unwrap_err().is_panic());
                    let other = tokio::task::spawn_local(Isolated::new(async { 1 }));
                    assert_eq!(other.await.unwrap(), 1);
                    println!("survived, envoy_bug_failures={}", counter.value());
                }
                Ok("shared") => {
                    let task = tokio::task::spawn_local(async { panic!("bug in shared state") });
                    let _ = task.await;
                    println!("survived a shared panic");
                }
                other => panic!("unknown case {other:?}"),
            }
        });
    }

    #[test]
    fn a_panic_in_a_connection_is_logged_counted_and_survived() {
        let (status, output) = run_child("connection");
        assert!(status.success(), "{status}: {output}");
        assert!(output.contains("survived, envoy_bug_failures=1"), "{output}");
    }

    #[test]
    fn a_panic_in_shared_work_aborts_with_its_location() {
        let (status, output) = run_child("shared");
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status}: {output}");
        assert!(output.contains("bug in shared state; aborting"), "{output}");
        assert!(output.contains("src/server/panic_hook.rs:"), "the location is printed: {output}");
        assert!(!output.contains("survived"), "{output}");
    }
}
