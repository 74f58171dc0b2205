//! The error enum shared by the core crates.

/// Errors raised by oxray's runtime. Each variant says what failed and, where
/// there is one, what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A resource amount that is negative, not finite or too precise.
    #[error("invalid resource amount for '{name}': {reason}")]
    InvalidResource {
        /// The resource's name.
        name: String,
        /// What is wrong with the amount.
        reason: String,
    },
    /// The runtime is not connected (never initialised, or shut down).
    #[error("oxray is not initialized: call oxray.init() first")]
    NotInitialized,
    /// A `get` or `wait` ran past its timeout.
    #[error("Get timed out: some object(s) not ready after {0:.3} seconds")]
    Timeout(f64),
    /// A blocking call stopped because the caller was interrupted (Ctrl-C).
    #[error("interrupted while waiting")]
    Interrupted,
    /// The node daemon went away while we depended on it.
    #[error("the oxray daemon died or closed the connection ({0}); the cluster is gone, call oxray.shutdown() and oxray.init() again")]
    DaemonDied(String),
    /// A transport-level failure talking to another process.
    #[error("connection to {peer} failed: {source}")]
    Connection {
        /// The address dialled.
        peer: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A message that could not be decoded: a version mismatch or a bug.
    #[error("malformed message from {peer}: {reason}")]
    Protocol {
        /// Who sent it.
        peer: String,
        /// What was wrong with it.
        reason: String,
    },
    /// An object whose owner is gone, so its value can never be fetched.
    #[error("object {object} is lost: its owner at {owner} is unreachable ({reason})")]
    ObjectLost {
        /// The object's id, in hex.
        object: String,
        /// Who held it.
        owner: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The shared-memory store cannot hold the object.
    #[error("{0}")]
    ObjectStoreFull(String),
    /// Invalid arguments given by the caller.
    #[error("{0}")]
    InvalidArgument(String),
    /// A TCP peer refused our cluster token (or we refused theirs).
    #[error("{peer} refused the connection: {reason}. Pass the cluster's token with --token, the OXRAY_AUTH_TOKEN variable, or the token file `oxray start --head` printed")]
    Unauthorized {
        /// The other side of the connection.
        peer: String,
        /// Why it was refused.
        reason: String,
    },
    /// The daemon refused a request.
    #[error("{0}")]
    Rejected(String),
    /// An actor call would queue more calls than the handle's
    /// `max_pending_calls` allows.
    #[error("The task {method} could not be submitted to {actor} because more than {limit} tasks are queued on the actor. This limit can be adjusted with the `max_pending_calls` actor option.")]
    PendingCallsLimitExceeded {
        /// The method called.
        method: String,
        /// The actor, as `Actor(Class, id)`.
        actor: String,
        /// The handle's `max_pending_calls`.
        limit: u32,
    },
    /// The caller of a generator task cannot be reached: the values the
    /// task yields have nowhere to go, so it stops.
    #[error("the caller of generator task '{task}' at {caller} is unreachable ({reason}); the task stops")]
    CallerGone {
        /// The generator task's function.
        task: String,
        /// The caller's address.
        caller: String,
        /// What failed.
        reason: String,
    },
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
