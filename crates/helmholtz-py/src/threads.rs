//! Work off the GIL in a private rayon pool: `n_threads` threads (None: rayon's default, the
//! number of cores). The library's results do not depend on the number of threads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

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
    let pool = pool(threads(n_threads)?)?;
    Ok(py.detach(|| pool.install(work)))
}

/// [`detached`] for long work that stops on request: while `work` runs in the pool, the
/// calling (main) thread checks for signals every 20 ms (Python runs its signal handlers, such
/// as Ctrl-C's KeyboardInterrupt, only there); a raised exception sets `stop`, `work` is
/// expected to finish soon after (writing its checkpoint), and the exception is returned
/// beside its result.
pub fn detached_until_signal<T, F>(
    py: Python<'_>,
    n_threads: Option<usize>,
    stop: &AtomicBool,
    work: F,
) -> PyResult<(T, Option<PyErr>)>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let pool = pool(threads(n_threads)?)?;
    Ok(py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| pool.install(work));
            let mut raised = None;
            while !worker.is_finished() {
                std::thread::sleep(Duration::from_millis(20));
                if raised.is_none()
                    && let Err(error) = Python::attach(|py| py.check_signals())
                {
                    raised = Some(error);
                    stop.store(true, Ordering::SeqCst);
                }
            }
            let result = worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (result, raised)
        })
    }))
}

/// The number of threads `n_threads` asks for (None: one per core).
fn threads(n_threads: Option<usize>) -> PyResult<usize> {
    Ok(match n_threads {
        Some(0) => {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "n_threads = 0: give at least 1, or None for one thread per core",
            ));
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    })
}
