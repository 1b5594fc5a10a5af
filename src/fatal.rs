//! A panic anywhere ends the process with a failure, so that systemd (`Restart=on-failure`)
//! or the container runtime restarts it.
//!
//! Without this, a panic in a spawned task is caught by the runtime and only that task ends:
//! a panicked site loop or supervisor leaves a process that looks alive (or exits 0) while it
//! no longer watches anything. Release builds also set `panic = "abort"` in Cargo.toml; the
//! hook makes every build behave alike and says what happened before the abort.

/// Installs the hook: the panic is logged (message and place), then the process aborts
/// (SIGABRT: a failure for systemd; the unit's `LimitCORE=0` keeps it from dumping memory that
/// holds client secrets).
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            "internal error (a bug): panic at {place}: {message}; exiting so that the service manager restarts the watchdog"
        );
        default(info);
        std::process::abort();
    }));
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    const CHILD: &str = "BT_WATCHDOG_TEST_PANIC_CHILD";

    /// A task that panics on the async runtime ends the whole process with a failure.
    #[test]
    fn a_panicking_task_ends_the_process_with_a_failure() {
        if std::env::var_os(CHILD).is_some() {
            super::install();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let task = tokio::spawn(async {
                    #[allow(clippy::panic)]
                    {
                        panic!("a bug in a site loop");
                    }
                });
                let _ = task.await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            });
            // Reached only if the panic did not end the process: the parent sees exit 0.
            return;
        }
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fatal::tests::a_panicking_task_ends_the_process_with_a_failure",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "the process survived a panicking task: {:?}\n{stderr}",
            output.status
        );
        assert!(stderr.contains("a bug in a site loop"), "{stderr}");
    }
}
