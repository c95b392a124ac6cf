//! The SQLite layer of the soft token: schema, opening and checking a database,
//! transactions, and the mapping of SQLite errors to token errors that name the file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::secrets::{self, DeviceKey};
use super::{DB_EXTENSION, DEFAULT_DEV_AUTH_KEY, SCHEMA_VERSION, SoftOptions, devkey_path};
use crate::error::{Error, Result};

/// `PRAGMA application_id` of a ukey soft-token database: "ukey".
pub(crate) const APPLICATION_ID: i64 = 0x756b_6579;

const SCHEMA: &str = "
CREATE TABLE device (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    serial TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    auth_key BLOB NOT NULL,
    sum BLOB
);
CREATE TABLE app (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    generation BLOB NOT NULL,
    epoch INTEGER NOT NULL DEFAULT 0,
    create_file_rights INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    sum BLOB
);
CREATE TABLE pin (
    app_id INTEGER NOT NULL REFERENCES app(id) ON DELETE CASCADE,
    pin_type INTEGER NOT NULL CHECK (pin_type IN (0, 1)),
    max_retries INTEGER NOT NULL CHECK (max_retries BETWEEN 1 AND 255),
    remaining INTEGER NOT NULL CHECK (remaining BETWEEN 0 AND max_retries),
    default_pin INTEGER NOT NULL,
    kdf TEXT,
    iterations INTEGER,
    salt BLOB,
    wrapped_mk BLOB,
    sum BLOB,
    PRIMARY KEY (app_id, pin_type)
);
CREATE TABLE container (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES app(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    ckaid BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    sum BLOB,
    UNIQUE (app_id, name),
    UNIQUE (app_id, ckaid)
);
CREATE TABLE key (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    container_id INTEGER NOT NULL REFERENCES container(id) ON DELETE CASCADE,
    usage INTEGER NOT NULL CHECK (usage IN (0, 1)),
    state INTEGER NOT NULL CHECK (state IN (0, 1)),
    alg TEXT NOT NULL,
    spki BLOB NOT NULL,
    sealed_pkcs8 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    sum BLOB
);
CREATE UNIQUE INDEX key_active ON key (container_id, usage) WHERE state = 0;
CREATE TABLE cert (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id INTEGER NOT NULL REFERENCES key(id) ON DELETE CASCADE,
    der BLOB NOT NULL,
    current INTEGER NOT NULL CHECK (current IN (0, 1)),
    imported_at INTEGER NOT NULL,
    sum BLOB
);
CREATE UNIQUE INDEX cert_current ON cert (key_id) WHERE current = 1;
CREATE TABLE file (
    app_id INTEGER NOT NULL REFERENCES app(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    read_rights INTEGER NOT NULL,
    write_rights INTEGER NOT NULL,
    data BLOB NOT NULL,
    sum BLOB,
    PRIMARY KEY (app_id, name)
);
CREATE TABLE object (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES app(id) ON DELETE CASCADE,
    private INTEGER NOT NULL CHECK (private IN (0, 1)),
    sum BLOB
);
CREATE TABLE attr (
    object_id INTEGER NOT NULL REFERENCES object(id) ON DELETE CASCADE,
    ty INTEGER NOT NULL,
    sensitive INTEGER NOT NULL CHECK (sensitive IN (0, 1)),
    value BLOB NOT NULL,
    sum BLOB,
    PRIMARY KEY (object_id, ty)
);
";

/// The tables whose rows carry a checksum in their `sum` column, and the columns it
/// covers: every column but `sum` (docs/robustness.md, "Row checksums"). SQLite keeps no
/// checksums of its own, so without these a bit flipped inside a value stored in clear (a
/// label, a certificate, a public key, a retry counter) that left the b-tree well formed
/// would go unnoticed. Sealed values are authenticated by AES-GCM besides.
const SUMMED: &[(&str, &[&str])] = &[
    (
        "device",
        &["id", "serial", "label", "created_at", "auth_key"],
    ),
    (
        "app",
        &[
            "id",
            "name",
            "generation",
            "epoch",
            "create_file_rights",
            "created_at",
        ],
    ),
    (
        "pin",
        &[
            "app_id",
            "pin_type",
            "max_retries",
            "remaining",
            "default_pin",
            "kdf",
            "iterations",
            "salt",
            "wrapped_mk",
        ],
    ),
    (
        "container",
        &["id", "app_id", "name", "ckaid", "created_at"],
    ),
    (
        "key",
        &[
            "id",
            "container_id",
            "usage",
            "state",
            "alg",
            "spki",
            "sealed_pkcs8",
            "created_at",
        ],
    ),
    ("cert", &["id", "key_id", "der", "current", "imported_at"]),
    (
        "file",
        &["app_id", "name", "read_rights", "write_rights", "data"],
    ),
    ("object", &["id", "app_id", "private"]),
    ("attr", &["object_id", "ty", "sensitive", "value"]),
];

/// The SQL function that computes a row's checksum: `ukey_row_sum(table, col...)`.
const SUM_FN: &str = "ukey_row_sum";
/// The start of the message a trigger raises when a row about to change fails its
/// checksum; [`map_sql`] turns it into [`Error::Corrupt`].
const SUM_RAISE: &str = "ukey row checksum";
/// Bytes of a row checksum (a truncated SM3).
const SUM_LEN: usize = 16;

/// The checksum of one row: SM3 over the table name and each value with its type and
/// length, truncated to [`SUM_LEN`] bytes. It detects damage, not forgery (the key to
/// forge it would sit beside it); the values an attacker could gain by forging are sealed.
fn row_sum(ctx: &mut rusqlite::functions::Context<'_>) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    use sm3::Digest;
    let mut h = sm3::Sm3::new();
    for i in 0..ctx.len() {
        let (tag, bytes): (u8, std::borrow::Cow<'_, [u8]>) = match ctx.get_raw(i) {
            ValueRef::Null => (0, (&[][..]).into()),
            ValueRef::Integer(v) => (1, v.to_be_bytes().to_vec().into()),
            ValueRef::Real(v) => (2, v.to_be_bytes().to_vec().into()),
            ValueRef::Text(t) => (3, t.into()),
            ValueRef::Blob(b) => (4, b.into()),
        };
        h.update([tag]);
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize()[..SUM_LEN].to_vec())
}

/// Registers [`SUM_FN`] on a connection: every connection that writes needs it, since
/// the triggers call it.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        SUM_FN,
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        row_sum,
    )
}

/// The SQL expression of a row's checksum; `row` qualifies the columns (`NEW.`, `OLD.`
/// in a trigger, empty in a query over the table).
fn sum_call(table: &str, cols: &[&str], row: &str) -> String {
    let args: Vec<String> = cols.iter().map(|c| format!("{row}{c}")).collect();
    format!("{SUM_FN}('{table}', {})", args.join(", "))
}

/// The triggers that keep the checksums: a new or changed row gets its sum, and a row
/// whose old values fail their sum cannot be changed (the change is refused instead of
/// making the damage look valid).
fn trigger_sql() -> String {
    let mut sql = String::new();
    for (t, cols) in SUMMED {
        let list = cols.join(", ");
        let new = sum_call(t, cols, "NEW.");
        let old = sum_call(t, cols, "OLD.");
        sql.push_str(&format!(
            "CREATE TRIGGER {t}_sum_insert AFTER INSERT ON {t} BEGIN
               UPDATE {t} SET sum = {new} WHERE rowid = NEW.rowid; END;
             CREATE TRIGGER {t}_sum_check BEFORE UPDATE OF {list} ON {t}
               WHEN OLD.sum IS NOT {old}
               BEGIN SELECT RAISE(ABORT, '{SUM_RAISE}: {t}'); END;
             CREATE TRIGGER {t}_sum_update AFTER UPDATE OF {list} ON {t} BEGIN
               UPDATE {t} SET sum = {new} WHERE rowid = NEW.rowid; END;
            "
        ));
    }
    sql
}

/// Checks every row against its checksum.
fn verify_rows(conn: &Connection, path: &Path) -> Result<()> {
    for (t, cols) in SUMMED {
        let q = format!(
            "SELECT rowid FROM {t} WHERE sum IS NOT {} LIMIT 1",
            sum_call(t, cols, "")
        );
        let bad: Option<i64> = conn
            .query_row(&q, [], |r| r.get(0))
            .optional()
            .map_err(|e| map_sql(path, &e))?;
        if let Some(rowid) = bad {
            return Err(Error::Corrupt {
                what: path.display().to_string(),
                detail: format!("row {rowid} of table {t} fails its checksum: the file is damaged"),
            });
        }
    }
    Ok(())
}

/// Upgrades a version-1 database (no row checksums) to this version inside one
/// exclusive transaction: the `sum` columns and triggers, and the sums of the rows as
/// they are (a version-1 file has nothing to check them against).
fn upgrade_v1(conn: &mut Connection, path: &Path) -> Result<()> {
    let sql = |e: rusqlite::Error| map_sql(path, &e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(sql)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if version != 1 {
        // Another process upgraded it first.
        return Ok(());
    }
    for (t, cols) in SUMMED {
        tx.execute_batch(&format!("ALTER TABLE {t} ADD COLUMN sum BLOB"))
            .map_err(sql)?;
        tx.execute(
            &format!("UPDATE {t} SET sum = {}", sum_call(t, cols, "")),
            [],
        )
        .map_err(sql)?;
    }
    tx.execute_batch(&trigger_sql()).map_err(sql)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql)?;
    tx.commit().map_err(sql)?;
    tracing::info!(path = %path.display(), "upgraded the soft-token database to schema version {SCHEMA_VERSION}");
    Ok(())
}

/// An error inside a transaction: SQLite's (mapped to name the file once the transaction
/// ends) or the token's own.
pub(crate) enum TxError {
    Sql(rusqlite::Error),
    Hal(Error),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sql(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        Self::Hal(e)
    }
}

/// The result type of transaction bodies.
pub(crate) type TxResult<T> = std::result::Result<T, TxError>;

/// Maps a SQLite error to a token error naming `path`.
pub(crate) fn map_sql(path: &Path, e: &rusqlite::Error) -> Error {
    let io = |detail: String| Error::Io {
        path: path.to_path_buf(),
        detail,
    };
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Error::Corrupt {
            what: path.display().to_string(),
            detail: e.to_string(),
        },
        Some(ErrorCode::DiskFull) => Error::DiskFull {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        Some(ErrorCode::ReadOnly) => io(format!("cannot write the token database ({e})")),
        Some(ErrorCode::SystemIoFailure) => io(format!(
            "I/O error on the token database; is the disk full or unwritable? ({e})"
        )),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            // SQLite does not say why; the file system does.
            match fs::File::open(path) {
                Err(os) => io(os.to_string()),
                Ok(_) => io(format!("cannot open the database or its journal ({e})")),
            }
        }
        Some(ErrorCode::ConstraintViolation) if e.to_string().contains(SUM_RAISE) => {
            Error::Corrupt {
                what: path.display().to_string(),
                detail: format!(
                    "a row about to change fails its checksum ({e}): the file is damaged"
                ),
            }
        }
        Some(ErrorCode::ConstraintViolation) => Error::Corrupt {
            what: path.display().to_string(),
            detail: format!("constraint violated: {e}"),
        },
        _ => io(e.to_string()),
    }
}

fn io_err(path: &Path, e: &std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One open soft-token database.
pub(crate) struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Write transactions this connection committed (changed under the connection lock).
    writes: AtomicU64,
    /// The last [`Store::version`] answered through SQLite, with the file's stat stamp
    /// at that moment (the fast path of `version`).
    seen: Mutex<Option<SeenVersion>>,
    /// The reuse window of `seen`, readable without its lock ([`Window`]).
    window: Window,
    opts: SoftOptions,
    serial: String,
    /// An `O_PATH` descriptor of the file, for the `fstat` of [`Store::version`]'s fast path
    /// (no walk of the path on every use of a key). `O_PATH` because closing it must not
    /// drop this process's POSIX locks on the file, SQLite's (Linux skips that for `O_PATH`
    /// descriptors); `None` on other systems, where the path is stat'ed.
    stat_fd: Option<fs::File>,
    /// (device, inode) of the file opened: another file at the path is another device.
    file_id: (u64, u64),
}

/// An `O_PATH` descriptor of `path` (Linux), for [`Store::file_meta`].
fn open_stat_fd(path: &Path) -> Option<fs::File> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .ok()
            .map(fs::File::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// What identifies one state of the database file for [`Store::version`]'s fast path:
/// any commit rewrites pages of the file in place (rollback journal), which changes its
/// mtime and ctime.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct StatStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl StatStamp {
    fn of(m: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct SeenVersion {
    stamp: StatStamp,
    writes: u64,
    data_version: i64,
    /// The file's mtime was older than the moment of the check by more than any
    /// timestamp granularity, so a later commit is bound to change the stamp (the
    /// "racily clean" rule of git's index).
    settled: bool,
    /// When this answer was last confirmed (by SQLite or by the stat stamp).
    confirmed: Instant,
    /// [`LOCAL_COMMITS`] at that moment.
    local: u64,
}

/// The fast path of [`Store::version`] without a lock: the last confirmed answer and the
/// moment its reuse window ends, published like a sequence lock. A writer (holding
/// `seen`'s lock, so writers take turns) first clears `until`, then stores the answer,
/// then the new end, which is later than every end before it. A reader that finds the
/// same nonzero `until` before and after reading the answer read one writer's answer
/// whole; otherwise it takes the locked path. Signing in a loop then costs no atomic
/// read-modify-write here (a locked instruction waits for the store buffer to drain, and
/// behind a signature that buffer is full).
#[derive(Default)]
struct Window {
    /// Nanoseconds after [`window_base`] at which the answer lapses; 0: none.
    until: AtomicU64,
    data_version: AtomicI64,
    writes: AtomicU64,
    local: AtomicU64,
}

/// The origin of [`Window::until`].
fn window_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// `t` in nanoseconds after [`window_base`] (0 before it).
fn window_ns(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(window_base()).as_nanos()).unwrap_or(u64::MAX)
}

impl Window {
    /// The answer, if one stands at `now` for these commit counts.
    fn read(&self, now: Instant, writes: u64, local: u64) -> Option<i64> {
        let until = self.until.load(Ordering::Acquire);
        if until == 0 || window_ns(now) >= until {
            return None;
        }
        let dv = self.data_version.load(Ordering::Relaxed);
        let w = self.writes.load(Ordering::Relaxed);
        let l = self.local.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if self.until.load(Ordering::Relaxed) != until || w != writes || l != local {
            return None;
        }
        Some(dv)
    }

    /// Publishes `v` (call with `seen`'s lock held).
    fn publish(&self, v: &SeenVersion) {
        let old = self.until.load(Ordering::Relaxed);
        self.until.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        self.data_version.store(v.data_version, Ordering::Relaxed);
        self.writes.store(v.writes, Ordering::Relaxed);
        self.local.store(v.local, Ordering::Relaxed);
        let end = window_ns(v.confirmed + RECHECK).max(old + 1);
        self.until.store(end, Ordering::Release);
    }
}

/// How long an answer of [`Store::version`] stands without a new look at the file: a
/// process that signs in a loop stats the file once per window instead of once per
/// signature (an `fstat` and the locked bookkeeping around it cost about 1 µs, a quarter
/// of an SM2 signature; once per 100 µs that was still 0.8% of a signing loop's time,
/// once per millisecond it is under 0.1%). A commit by this library in this process,
/// through any handle, ends the window at once ([`LOCAL_COMMITS`]); another process's
/// commit (or another copy of the library's) is seen at most this long after it
/// returned.
pub(crate) const RECHECK: std::time::Duration = std::time::Duration::from_millis(1);

/// Commits made through any [`Store`] of this process (this copy of the library).
static LOCAL_COMMITS: AtomicU64 = AtomicU64::new(0);

/// How far the file's mtime must lie in the past before an unchanged stat stamp proves
/// an unchanged file. Local file systems stamp with the kernel's coarse clock, one tick
/// (1-10 ms) behind; 250 ms is 25 ticks at the coarsest, yet short enough that a key
/// used right after it was made soon takes the fast path.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(250);

impl Store {
    /// Opens and checks an existing database: the SQLite structure (`quick_check`) and
    /// every row's checksum. Nothing is written, except the one-time upgrade of a
    /// version-1 database.
    pub(crate) fn open(path: &Path, opts: &SoftOptions) -> Result<Self> {
        let meta = fs::metadata(path).map_err(|e| io_err(path, &e))?;
        if !meta.is_file() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                detail: "not a regular file".into(),
            });
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| map_sql(path, &e))?;
        configure(&conn, opts).map_err(|e| map_sql(path, &e))?;
        let (serial, version) = check_schema(&conn, path)?;
        if version == 1 {
            match upgrade_v1(&mut conn, path) {
                Ok(()) => verify_rows(&conn, path)?,
                // Read-only media: served as version 1 was, without row checksums.
                Err(e @ (Error::Io { .. } | Error::Busy)) => tracing::warn!(
                    path = %path.display(), error = %e,
                    "version-1 database not upgraded; its rows are not checksummed"
                ),
                Err(e) => return Err(e),
            }
        } else {
            verify_rows(&conn, path)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            writes: AtomicU64::new(0),
            seen: Mutex::new(None),
            window: Window::default(),
            opts: opts.clone(),
            serial,
            stat_fd: open_stat_fd(path),
            file_id: {
                use std::os::unix::fs::MetadataExt;
                (meta.dev(), meta.ino())
            },
        })
    }

    /// The file's metadata: through the kept descriptor while the file it names still has
    /// a link (the usual case); by path when it has none (deleted or replaced) or there is
    /// no descriptor. A missing file, or another file at the path (deleted, then made
    /// again), is `DeviceRemoved`: this store's connection still reads the old one.
    fn file_meta(&self) -> Result<fs::Metadata> {
        use std::os::unix::fs::MetadataExt;
        if let Some(f) = &self.stat_fd
            && let Ok(m) = f.metadata()
            && m.nlink() > 0
        {
            return Ok(m);
        }
        match fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.file_id => Ok(m),
            Ok(_) => Err(Error::DeviceRemoved),
            // A token whose database was deleted (ukey device delete) is gone for good.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::DeviceRemoved),
            Err(e) => Err(io_err(&self.path, &e)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn serial(&self) -> &str {
        &self.serial
    }

    pub(crate) fn opts(&self) -> &SoftOptions {
        &self.opts
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        // A token whose database was deleted (ukey device delete) is gone for good.
        self.file_meta()?;
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn run<T>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> TxResult<T>,
    ) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(|e| map_sql(&self.path, &e))?;
        match f(&tx) {
            Ok(v) => {
                tx.commit().map_err(|e| map_sql(&self.path, &e))?;
                if !matches!(behavior, TransactionBehavior::Deferred) {
                    self.writes.fetch_add(1, Ordering::SeqCst);
                    LOCAL_COMMITS.fetch_add(1, Ordering::SeqCst);
                }
                Ok(v)
            }
            Err(e) => {
                drop(tx); // rolls back
                Err(match e {
                    TxError::Sql(e) => map_sql(&self.path, &e),
                    TxError::Hal(e) => e,
                })
            }
        }
    }

    /// A version of the whole database: it changes whenever anyone, in this process or
    /// another, commits a change. (SQLite's `data_version` counts the commits of other
    /// connections; `writes` those of this one.)
    ///
    /// This runs before every use of a cached key, so it has two fast paths:
    /// - within [`RECHECK`] of the last confirmed answer, with no commit by this process
    ///   since, that answer stands without a system call;
    /// - otherwise, when the file's stat stamp is the one seen at the last SQLite check,
    ///   nothing was written by this connection since, and the file's mtime had settled
    ///   at that check, no one can have committed since, and the last answer stands. That
    ///   costs one `fstat` of a kept descriptor instead of SQLite's shared lock, journal
    ///   probes and header read.
    pub(crate) fn version(&self) -> Result<(i64, u64)> {
        let now = Instant::now();
        let writes = self.writes.load(Ordering::SeqCst);
        let local = LOCAL_COMMITS.load(Ordering::SeqCst);
        if let Some(dv) = self.window.read(now, writes, local) {
            return Ok((dv, writes));
        }
        let seen = *self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = seen
            && v.writes == writes
            && v.local == local
            && now.saturating_duration_since(v.confirmed) < RECHECK
        {
            return Ok((v.data_version, writes));
        }
        let meta = self.file_meta()?;
        let stamp = StatStamp::of(&meta);
        if let Some(v) = seen
            && v.settled
            && v.stamp == stamp
            && v.writes == writes
        {
            let v = SeenVersion {
                confirmed: now,
                local,
                ..v
            };
            self.remember(v);
            return Ok((v.data_version, writes));
        }
        let conn = self.lock()?;
        // A cached statement.
        let dv: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(|e| map_sql(&self.path, &e))?;
        // Read under the connection lock: no commit of this connection is in flight.
        let writes = self.writes.load(Ordering::SeqCst);
        drop(conn);
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > SETTLE);
        self.remember(SeenVersion {
            stamp,
            writes,
            data_version: dv,
            settled,
            confirmed: now,
            local,
        });
        Ok((dv, writes))
    }

    /// Keeps `v` as the last confirmed answer of [`Self::version`], and publishes its
    /// reuse window.
    fn remember(&self, v: SeenVersion) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        *seen = Some(v);
        self.window.publish(&v);
    }

    /// A read-only transaction (a consistent snapshot).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> TxResult<T>) -> Result<T> {
        self.run(TransactionBehavior::Deferred, f)
    }

    /// A write transaction holding the write lock from the start. Committed when `f`
    /// returns `Ok`, rolled back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> TxResult<T>) -> Result<T> {
        self.run(TransactionBehavior::Immediate, f)
    }

    /// A full consistency check: SQLite's `integrity_check` and `foreign_key_check`, and
    /// every row's checksum.
    pub(crate) fn integrity_check(&self) -> Result<()> {
        let conn = self.lock()?;
        let sql = |e: rusqlite::Error| map_sql(&self.path, &e);
        let mut problems: Vec<String> = {
            let mut st = conn.prepare("PRAGMA integrity_check(20)").map_err(sql)?;
            st.query_map([], |r| r.get::<_, String>(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?
        };
        if problems.first().map(String::as_str) == Some("ok") {
            problems.clear();
        }
        let mut st = conn.prepare("PRAGMA foreign_key_check").map_err(sql)?;
        let fk = st
            .query_map([], |r| {
                Ok(format!(
                    "row {} of {} has a dangling reference to {}",
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(2)?
                ))
            })
            .map_err(sql)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql)?;
        problems.extend(fk);
        drop(st);
        match verify_rows(&conn, &self.path) {
            Ok(()) => {}
            Err(Error::Corrupt { detail, .. }) => problems.push(detail),
            Err(e) => return Err(e),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Corrupt {
                what: self.path.display().to_string(),
                detail: problems.join("; "),
            })
        }
    }

    /// The device key from the file beside the database.
    pub(crate) fn device_key(&self) -> Result<DeviceKey> {
        secrets::read_device_key(&devkey_path(&self.path))
    }
}

fn configure(conn: &Connection, opts: &SoftOptions) -> rusqlite::Result<()> {
    register_functions(conn)?;
    conn.busy_timeout(opts.busy_timeout)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Deleted rows are overwritten, so no old sealed value or wrap lingers in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(())
}

/// Checks that `conn` is a ukey database of a version this build reads, and intact.
/// Returns the device serial and the schema version.
fn check_schema(conn: &Connection, path: &Path) -> Result<(String, i64)> {
    let corrupt = |detail: &str| Error::Corrupt {
        what: path.display().to_string(),
        detail: detail.to_owned(),
    };
    let sql = |e: rusqlite::Error| map_sql(path, &e);
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(sql)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if app_id != APPLICATION_ID {
        return Err(corrupt("not a ukey soft-token database"));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        return Err(corrupt("unknown schema version"));
    }
    let check: Vec<String> = {
        let mut st = conn.prepare("PRAGMA quick_check(5)").map_err(sql)?;
        st.query_map([], |r| r.get::<_, String>(0))
            .map_err(sql)?
            .collect::<rusqlite::Result<_>>()
            .map_err(sql)?
    };
    if check.first().map(String::as_str) != Some("ok") {
        return Err(corrupt(&check.join("; ")));
    }
    let serial: Option<String> = conn
        .query_row("SELECT serial FROM device WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    let serial = serial.ok_or_else(|| corrupt("the device record is missing"))?;
    Ok((serial, version))
}

/// A new serial: `UKS` and 13 upper-case hex digits.
fn new_serial() -> Result<String> {
    let r = crate::crypto::rng::random_bytes(7)?;
    let mut s = hex::encode_upper(r);
    s.truncate(13);
    Ok(format!("UKS{s}"))
}

/// Checks a device label (≤ 32 bytes, no NUL).
pub(crate) fn check_label(label: &str) -> Result<()> {
    if label.len() > 32 || label.contains('\0') {
        return Err(Error::invalid_arg(
            "device label must be at most 32 bytes, without NUL",
        ));
    }
    Ok(())
}

/// Creates the device files in `dir` and returns the database path.
pub(crate) fn create_device(dir: &Path, label: &str, opts: &SoftOptions) -> Result<PathBuf> {
    check_label(label)?;
    create_dir(dir)?;
    let serial = new_serial()?;
    let db_path = dir.join(format!("{serial}.{DB_EXTENSION}"));
    let key_path = devkey_path(&db_path);
    if db_path.exists() || key_path.exists() {
        return Err(Error::already_exists(format!("device {serial}")));
    }
    let devkey = DeviceKey::generate()?;
    secrets::write_device_key(&key_path, &devkey)?;

    // Build the database under a temporary name, then rename it into place.
    let tmp = dir.join(format!(".{serial}.{DB_EXTENSION}.tmp"));
    let built = build_db(&tmp, &serial, label, &devkey, opts).and_then(|()| {
        fs::rename(&tmp, &db_path).map_err(|e| io_err(&db_path, &e))?;
        sync_dir(dir);
        Ok(())
    });
    if let Err(e) = built {
        let _ = fs::remove_file(&tmp);
        let _ = fs::remove_file(tmp.with_extension("tmp-journal"));
        let _ = fs::remove_file(&key_path);
        return Err(e);
    }
    tracing::info!(serial = %serial, path = %db_path.display(), "created soft device");
    Ok(db_path)
}

fn build_db(
    path: &Path,
    serial: &str,
    label: &str,
    devkey: &DeviceKey,
    opts: &SoftOptions,
) -> Result<()> {
    let sql = |e: rusqlite::Error| map_sql(path, &e);
    let _ = fs::remove_file(path);
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    configure(&conn, opts).map_err(sql)?;
    let auth = secrets::seal_auth_key(devkey, serial, DEFAULT_DEV_AUTH_KEY)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(sql)?;
    tx.execute_batch(SCHEMA).map_err(sql)?;
    tx.execute_batch(&trigger_sql()).map_err(sql)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(sql)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql)?;
    tx.execute(
        "INSERT INTO device (id, serial, label, created_at, auth_key) VALUES (1, ?1, ?2, ?3, ?4)",
        rusqlite::params![serial, label, now(), auth],
    )
    .map_err(sql)?;
    tx.commit().map_err(sql)?;
    conn.close().map_err(|(_, e)| sql(e))?;
    // Only the owner reads the database (SQLite gives its journals the same mode), and
    // its contents are on disk before it gets its real name.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| io_err(path, &e))?;
    }
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(path, &e))?;
    Ok(())
}

/// Makes the data directory (mode 0700 when new).
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io_err(dir, &e))
}

/// fsync of a directory, so a rename in it is durable. Best effort.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename), with mode 0600.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let res = (|| -> std::io::Result<()> {
        let mut o = fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path, &e));
    }
    sync_dir(dir);
    Ok(())
}

/// Deletes a device's database, its journals and its device key.
pub(crate) fn delete_device_files(db_path: &Path) -> Result<()> {
    fs::remove_file(db_path).map_err(|e| io_err(db_path, &e))?;
    // Ends every store's reuse window (`RECHECK`) in this process; after the removal, so
    // that no answer confirmed in between outlives it.
    LOCAL_COMMITS.fetch_add(1, Ordering::SeqCst);
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut p = db_path.as_os_str().to_owned();
        p.push(suffix);
        let _ = fs::remove_file(PathBuf::from(p));
    }
    let key = devkey_path(db_path);
    match fs::remove_file(&key) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&key, &e)),
    }
    if let Some(dir) = db_path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod version_tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let f = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open db");
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(secs))
            .expect("set mtime");
    }

    /// The fast path of `version` answers from the stat stamp only once the file has
    /// settled, and still sees another connection's commit made after that.
    #[test]
    fn version_fast_path_still_sees_other_connections_commits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = SoftOptions {
            kdf_iterations: 1000,
            ..SoftOptions::default()
        };
        let path = create_device(dir.path(), "v", &opts).expect("create");
        let a = Store::open(&path, &opts).expect("open a");
        let b = Store::open(&path, &opts).expect("open b");
        // Freshly written: not settled, every call asks SQLite.
        let v0 = a.version().expect("v0");
        assert!(!a.seen.lock().expect("seen").expect("seen").settled);
        age(&path, 60);
        // (Ageing is no commit: the last answer stands for the rest of its window.)
        std::thread::sleep(RECHECK);
        let v1 = a.version().expect("v1");
        assert_eq!(v0, v1, "ageing the mtime is no commit");
        assert!(a.seen.lock().expect("seen").expect("seen").settled);
        // Settled and unchanged: answered from the stamp.
        assert_eq!(a.version().expect("v2"), v1);
        // Another connection commits: the stamp changes and SQLite is asked again.
        b.write(|tx| {
            tx.execute("UPDATE device SET label = 'w' WHERE id = 1", [])?;
            Ok(())
        })
        .expect("write b");
        let v3 = a.version().expect("v3");
        assert_ne!(
            v3.0, v1.0,
            "a commit by another connection must change the version"
        );
        // A commit by a connection outside this library (another process, as far as
        // the reuse window knows) is seen once the window is over.
        let v3b = {
            let _ = a.version().expect("confirmed now");
            let foreign = Connection::open(&path).expect("foreign connection");
            foreign
                .execute_batch("CREATE TABLE foreign_commit (x)")
                .expect("foreign commit");
            drop(foreign);
            std::thread::sleep(RECHECK);
            a.version().expect("v3b")
        };
        assert_ne!(v3b.0, v3.0, "a foreign commit must change the version");
        let v3 = v3b;
        // Its own commit changes the other half.
        a.write(|tx| {
            tx.execute("UPDATE device SET label = 'x' WHERE id = 1", [])?;
            Ok(())
        })
        .expect("write a");
        assert_ne!(a.version().expect("v4").1, v3.1);
        // A database deleted behind the library's back is a removed device once the
        // last answer's reuse window is over.
        fs::remove_file(&path).expect("rm");
        std::thread::sleep(RECHECK);
        assert!(matches!(a.version(), Err(Error::DeviceRemoved)));
    }

    /// The lock-free window answers only within its time, only for the commit counts it
    /// was published with, and after a new publication only with the new answer.
    #[test]
    fn the_window_answers_only_what_was_published_for_its_time() {
        let w = Window::default();
        let now = Instant::now();
        assert_eq!(w.read(now, 0, 0), None, "nothing published yet");
        let stamp = StatStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (4, 5),
            ctime: (6, 7),
        };
        let v = SeenVersion {
            stamp,
            writes: 3,
            data_version: 41,
            settled: true,
            confirmed: now,
            local: 9,
        };
        w.publish(&v);
        assert_eq!(w.read(now, 3, 9), Some(41));
        assert_eq!(w.read(now, 4, 9), None, "this connection committed since");
        assert_eq!(w.read(now, 3, 10), None, "this process committed since");
        assert_eq!(w.read(now + RECHECK, 3, 9), None, "the window is over");
        w.publish(&SeenVersion {
            data_version: 42,
            writes: 4,
            ..v
        });
        assert_eq!(w.read(now, 3, 9), None);
        assert_eq!(w.read(now, 4, 9), Some(42));
        // A republication at the same moment still moves the end forward (the value a
        // reader compares before and after is never reused).
        let before = w.until.load(Ordering::Relaxed);
        w.publish(&SeenVersion {
            data_version: 42,
            writes: 4,
            ..v
        });
        assert!(w.until.load(Ordering::Relaxed) > before);
    }
}
