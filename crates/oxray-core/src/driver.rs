//! Who drives the core worker's event loop: the thread that waits.
//!
//! The runtime is single-threaded. A caller blocked in `get`, `wait` or
//! `next_task` drives it itself, so the kernel's wake-up for a reply or a
//! pushed task lands on the thread that goes on with it: one wake-up per
//! message instead of two (an I/O thread, then the waiting thread). On a
//! virtual machine a cross-CPU wake-up costs about 20 µs, so this halves the
//! cost of a synchronous round trip.
//!
//! While no caller waits, a background thread drives the loop, so replies,
//! borrowers' requests and cancellations make progress during user code.
//! Handing the loop from one thread to the other costs two wake-ups, so the
//! background thread is lazy while callers come back quickly: after a few
//! waits in a row that each began less than [`GRACE`] after the previous
//! one ended, it only takes over once the loop has been left alone for
//! [`GRACE`] (it looks every [`CHECK`] while a caller drives); after a wait
//! longer than [`SETTLE`] it is eager again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oxray_common::{Error, Result};
use parking_lot::{Condvar, Mutex};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// How long the loop may go undriven while callers are coming back quickly.
const GRACE: Duration = Duration::from_millis(2);
/// How often the lazy background thread looks whether a caller still
/// drives the loop (it is not told when one leaves: that would cost a
/// wake-up per wait).
const CHECK: Duration = Duration::from_millis(10);
/// Waits in a row, each soon after the last, that make the background lazy.
const STREAK: u32 = 3;
/// A wait this long ends the streak: the background becomes eager again.
const SETTLE: Duration = Duration::from_millis(50);
/// Longest a caller polls the loop without sleeping, when its waits are
/// short: a reply that lands while it polls costs no wake-up at all.
const SPIN_MAX: Duration = Duration::from_micros(60);
/// A yield that took this long gave the CPU to another thread.
const YIELDED_AWAY: Duration = Duration::from_micros(10);
/// Waits that typically take longer than this never poll. It is well above
/// [`SPIN_MAX`]: a wait that takes 80 µs while sleeping takes 25 µs once
/// both sides poll, so the decision must not look at the sleeping figure
/// alone.
const SPIN_WHEN_UNDER: Duration = Duration::from_micros(240);

/// The event loop and the threads that take turns driving it. Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct Driver {
    shared: Arc<Shared>,
}

struct Shared {
    /// Taken out at shutdown.
    runtime: Mutex<Option<Arc<Runtime>>>,
    /// Callers inside `block_on`.
    waiting: AtomicUsize,
    /// When the last caller left `block_on` / last entered, in µs since `epoch`.
    left_at: AtomicU64,
    entered_at: AtomicU64,
    /// Consecutive waits that began soon after the previous one ended.
    streak: AtomicU32,
    /// How long recent waits took (µs, moving average).
    typical_wait: AtomicU64,
    epoch: Instant,
    /// Whether the background thread holds the loop now.
    background_driving: AtomicBool,
    /// Tells the background thread to hand the loop to a caller.
    release: Notify,
    /// Wakes the background thread when the loop is free.
    state: Mutex<Background>,
    cv: Condvar,
}

#[derive(Default)]
struct Background {
    /// Asleep without a timeout: a caller leaving must wake it.
    parked: bool,
    stop: bool,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Starts the single-threaded runtime and its background driver thread.
    pub(crate) fn start() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Connection {
                peer: "tokio runtime".into(),
                source,
            })?;
        let shared = Arc::new(Shared {
            runtime: Mutex::new(Some(Arc::new(runtime))),
            waiting: AtomicUsize::new(0),
            left_at: AtomicU64::new(0),
            entered_at: AtomicU64::new(0),
            streak: AtomicU32::new(0),
            typical_wait: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
            background_driving: AtomicBool::new(false),
            release: Notify::new(),
            state: Mutex::new(Background::default()),
            cv: Condvar::new(),
        });
        let bg = shared.clone();
        let thread = std::thread::Builder::new()
            .name("oxray-core".into())
            .spawn(move || bg.background())
            .map_err(|source| Error::Connection {
                peer: "background driver thread".into(),
                source,
            })?;
        shared.state.lock().thread = Some(thread);
        Ok(Self { shared })
    }

    /// A handle for spawning tasks onto the loop.
    pub(crate) fn handle(&self) -> Result<tokio::runtime::Handle> {
        Ok(self.runtime()?.handle().clone())
    }

    fn runtime(&self) -> Result<Arc<Runtime>> {
        self.shared
            .runtime
            .lock()
            .clone()
            .ok_or(Error::NotInitialized)
    }

    /// Runs `f` to completion, driving the loop from this thread meanwhile.
    /// Must not be called from a task on the loop.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> Result<F::Output> {
        let runtime = self.runtime()?;
        let s = &*self.shared;
        let alone = s.waiting.fetch_add(1, Ordering::SeqCst) == 0;
        let entered = s.now();
        if alone {
            let gap = entered.saturating_sub(s.left_at.load(Ordering::Relaxed));
            if gap < GRACE.as_micros() as u64 {
                s.streak.fetch_add(1, Ordering::Relaxed);
            } else {
                s.streak.store(0, Ordering::Relaxed);
            }
            s.entered_at.store(entered, Ordering::Relaxed);
        }
        if s.background_driving.load(Ordering::SeqCst) {
            s.release.notify_waiters();
        }
        let mut f = std::pin::pin!(f);
        let mut out = None;
        let spin = if alone && s.lazy() {
            s.spin_budget()
        } else {
            0
        };
        while out.is_none() && s.now().saturating_sub(entered) < spin {
            // One turn of the loop that never sleeps: poll, run what is
            // ready, read the sockets, poll again.
            out = runtime.block_on(async {
                if let Poll::Ready(v) = futures::poll!(f.as_mut()) {
                    return Some(v);
                }
                tokio::task::yield_now().await;
                None
            });
            // Give way to any thread waiting for this CPU (a worker of the
            // same machine, say): polling must not take its time. If one
            // took it, the machine is busy: stop polling and sleep.
            let before = s.now();
            std::thread::yield_now();
            if s.now().saturating_sub(before) > YIELDED_AWAY.as_micros() as u64 {
                break;
            }
        }
        let out = match out {
            Some(v) => v,
            None => runtime.block_on(f),
        };
        let left = s.now();
        if alone {
            let took = left.saturating_sub(entered).min(SETTLE.as_micros() as u64);
            let typical = s.typical_wait.load(Ordering::Relaxed);
            let typical = if typical == u64::MAX {
                took
            } else {
                (typical * 7 + took) / 8
            };
            s.typical_wait.store(typical, Ordering::Relaxed);
        }
        if s.waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            if left.saturating_sub(s.entered_at.load(Ordering::Relaxed)) > SETTLE.as_micros() as u64
            {
                s.streak.store(0, Ordering::Relaxed);
            }
            s.left_at.store(left, Ordering::Relaxed);
            let st = s.state.lock();
            if st.parked {
                s.cv.notify_one();
            }
        }
        Ok(out)
    }

    /// Stops the background thread and the runtime: every task is dropped,
    /// which closes every connection. Later `block_on` calls fail.
    pub(crate) fn shutdown(&self) {
        let s = &*self.shared;
        let thread = {
            let mut st = s.state.lock();
            st.stop = true;
            s.cv.notify_one();
            st.thread.take()
        };
        s.release.notify_waiters();
        if let Some(t) = thread {
            let _ = t.join();
        }
        let Some(runtime) = s.runtime.lock().take() else {
            return;
        };
        // Callers still inside block_on hold the runtime; the last one to
        // leave drops it.
        if let Ok(runtime) = Arc::try_unwrap(runtime) {
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

impl Shared {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn lazy(&self) -> bool {
        self.streak.load(Ordering::Relaxed) >= STREAK
    }

    /// How long to poll before sleeping (µs): about twice a typical wait,
    /// at most [`SPIN_MAX`], when waits are short; not at all otherwise.
    fn spin_budget(&self) -> u64 {
        let typical = self.typical_wait.load(Ordering::Relaxed);
        if typical > SPIN_WHEN_UNDER.as_micros() as u64 {
            0
        } else {
            (2 * typical).min(SPIN_MAX.as_micros() as u64)
        }
    }

    /// The background thread: drives the loop whenever no caller does,
    /// lazily while callers come back quickly.
    fn background(self: Arc<Self>) {
        loop {
            {
                let mut st = self.state.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    if self.waiting.load(Ordering::SeqCst) == 0 {
                        let idle = self
                            .now()
                            .saturating_sub(self.left_at.load(Ordering::Relaxed));
                        if !self.lazy() || idle >= GRACE.as_micros() as u64 {
                            break;
                        }
                        self.cv.wait_for(&mut st, GRACE);
                    } else if self.lazy() {
                        let waited = self
                            .now()
                            .saturating_sub(self.entered_at.load(Ordering::Relaxed));
                        if waited > SETTLE.as_micros() as u64 {
                            self.streak.store(0, Ordering::Relaxed);
                            continue;
                        }
                        self.cv.wait_for(&mut st, CHECK);
                    } else {
                        st.parked = true;
                        self.cv.wait(&mut st);
                        st.parked = false;
                    }
                }
            }
            let Some(runtime) = self.runtime.lock().clone() else {
                return;
            };
            self.background_driving.store(true, Ordering::SeqCst);
            runtime.block_on(async {
                let released = self.release.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if self.waiting.load(Ordering::SeqCst) > 0 || self.state.lock().stop {
                    return;
                }
                released.await;
            });
            self.background_driving.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_tasks_progress_while_no_caller_waits() {
        let driver = Driver::start().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        driver.handle().unwrap().spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send(7).unwrap();
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
        driver.shutdown();
    }

    #[test]
    fn callers_drive_and_background_takes_over_after_a_streak() {
        let driver = Driver::start().unwrap();
        // A streak of quick waits makes the background lazy ...
        for i in 0..10 {
            assert_eq!(
                driver
                    .block_on(async move {
                        tokio::task::yield_now().await;
                        i
                    })
                    .unwrap(),
                i
            );
        }
        // ... yet a task spawned afterwards still runs without any caller.
        let (tx, rx) = std::sync::mpsc::channel();
        driver
            .handle()
            .unwrap()
            .spawn(async move { tx.send(()).unwrap() });
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        driver.shutdown();
        assert!(driver.block_on(async {}).is_err(), "no loop after shutdown");
    }

    #[test]
    fn short_waits_in_a_row_poll_and_still_see_every_answer() {
        let driver = Driver::start().unwrap();
        let (ask_tx, ask_rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<u32>>();
        let answerer = std::thread::spawn(move || {
            for (i, reply) in ask_rx.into_iter().enumerate() {
                let _ = reply.send(i as u32);
            }
        });
        // Quick answers make the waits short, so later ones (on an unloaded
        // machine) poll instead of sleeping; each must get its own answer.
        for i in 0..500u32 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            ask_tx.send(tx).unwrap();
            assert_eq!(driver.block_on(rx).unwrap().unwrap(), i);
        }
        drop(ask_tx);
        answerer.join().unwrap();
        driver.shutdown();
    }

    #[test]
    fn many_threads_wait_at_once() {
        let driver = Driver::start().unwrap();
        let notify = Arc::new(Notify::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (d, n) = (driver.clone(), notify.clone());
                std::thread::spawn(move || d.block_on(async move { n.notified().await }).unwrap())
            })
            .collect();
        while threads.iter().any(|t| !t.is_finished()) {
            notify.notify_waiters();
            std::thread::sleep(Duration::from_millis(1));
        }
        for t in threads {
            t.join().unwrap();
        }
        driver.shutdown();
    }
}
