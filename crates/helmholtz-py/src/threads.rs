//! Work off the GIL in a private rayon pool: `n_threads` threads (None: rayon's default, the
//! number of cores). The library's results do not depend on the number of threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use rayon::ThreadPool;

use crate::errors::internal;

fn pools() -> &'static Mutex<HashMap<usize, Arc<ThreadPool>>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The pool of `n` threads, built once.
fn pool(n: usize) -> PyResult<Arc<ThreadPool>> {
    let mut pools = pools()
        .lock()
        .map_err(|_| internal("thread pools poisoned"))?;
    if let Some(pool) = pools.get(&n) {
        return Ok(pool.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("helmholtz-{i}"))
        .build()
        .map_err(|e| internal(format!("cannot start {n} threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(n, pool.clone());
    Ok(pool)
}

/// Runs `work` with the GIL released in the pool of `n_threads` threads.
pub fn detached<T, F>(py: Python<'_>, n_threads: Option<usize>, work: F) -> PyResult<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let n = match n_threads {
        Some(0) => {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "n_threads = 0: give at least 1, or None for one thread per core",
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pool = pool(n)?;
    Ok(py.detach(|| pool.install(work)))
}

/// Runs `work` in the pool of `n_threads` threads while this (the calling, usually the main)
/// thread waits with the GIL released and checks for signals every 50 ms: Python delivers
/// Ctrl-C to the main thread only, so a check inside `work` would never see it. On a signal
/// `stop` is raised, `work` is left to finish its step (and write its checkpoint), and the
/// signal's exception (KeyboardInterrupt) comes back beside `work`'s result.
pub fn interruptible<T, F>(
    py: Python<'_>,
    n_threads: Option<usize>,
    stop: &std::sync::atomic::AtomicBool,
    work: F,
) -> PyResult<(T, Option<PyErr>)>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    use std::sync::mpsc::{RecvTimeoutError, channel};
    use std::time::Duration;
    let n = match n_threads {
        Some(0) => {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "n_threads = 0: give at least 1, or None for one thread per core",
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pool = pool(n)?;
    let (sender, receiver) = channel();
    // Mutex: the wait below runs off the GIL, where what it touches must be Sync.
    let receiver = Mutex::new(receiver);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let out = pool.install(work);
            // The receiver outlives the scope's threads.
            let _ = sender.send(out);
        });
        let mut signal = None;
        loop {
            let next = py.detach(|| match receiver.lock() {
                Ok(receiver) => receiver.recv_timeout(Duration::from_millis(50)),
                Err(_) => Err(RecvTimeoutError::Disconnected),
            });
            match next {
                Ok(out) => return Ok((out, signal)),
                Err(RecvTimeoutError::Timeout) => {
                    if signal.is_none()
                        && let Err(error) = py.check_signals()
                    {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        signal = Some(error);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(internal("the worker thread ended without a result"));
                }
            }
        }
    })
}
