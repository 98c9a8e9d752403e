//! Table rows copied by pgship itself: `COPY ... TO STDOUT` on the source, inside the clone's
//! exported snapshot, relayed into `COPY ... FROM STDIN` on the destination. No `pg_dump` or
//! `pg_restore` process in between, and the binary format when every column's type allows it
//! (the destination then parses no text: about a fifth less CPU for its `COPY`, the
//! bottleneck of a clone).
//!
//! A table of [`CopyTable::fresh`] is truncated in the transaction that fills it: `COPY
//! FREEZE` then writes its rows frozen and all-visible (the index builds that follow do not
//! rewrite every page to set hint bits), and a `wal_level=minimal` destination (the throwaway
//! local cluster) writes it without WAL.
//!
//! Each stream runs on a [`CopyThread`] of its own, together with the tasks of its two
//! connections: the source sends a message per row, and handing batches of them between the
//! threads of a multi-threaded runtime cost pgship as much CPU again as the copy itself
//! (which on a small machine the source's and destination's servers need). Stream 0 reads
//! through pgship's own snapshot session (which holds the `ACCESS SHARE` locks, see
//! [`super::source::lock_tables`]); the others through sessions that import the snapshot and
//! lock the same tables at once. Streams take the largest table left. pgship holds at most a
//! few chunks of each stream in memory (the connections' channels are bounded).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, TryStreamExt};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::db::{Conn, ConnectOptions, DbError, DbUrl, connect, quote_literal};

use super::plan::CopyTable;
use super::proc::Failure;
use super::{CloneError, Counters};

/// Rows are passed to the destination in messages of about this size.
const CHUNK: usize = 256 * 1024;

/// A thread running a single-threaded runtime: what is spawned on it (a stream and the tasks
/// of the connections it opened) never hands work to another thread. It stops, dropping its
/// tasks and closing their connections, when this value is dropped.
pub(crate) struct CopyThread {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CopyThread {
    pub fn start() -> Result<CopyThread, CloneError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_error = |e: &dyn std::fmt::Display| CloneError::Io {
            path: "a copy thread".into(),
            message: e.to_string(),
        };
        std::thread::Builder::new()
            .name("pgship-copy".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| thread_error(&e))?;
        let handle = rx
            .recv()
            .map_err(|e| thread_error(&e))?
            .map_err(|e| thread_error(&e))?;
        Ok(CopyThread {
            handle,
            _stop: stop,
        })
    }

    /// Run `work` on this thread; it is aborted if the returned future is dropped.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, CloneError> {
        struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);
        impl<T> Drop for AbortOnDrop<T> {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let mut task = AbortOnDrop(self.handle.spawn(work));
        (&mut task.0).await.map_err(|e| CloneError::Io {
            path: "a copy thread".into(),
            message: e.to_string(),
        })
    }

    /// Connect on this thread (the connection's task runs here).
    pub async fn connect(&self, url: &DbUrl, opts: &ConnectOptions) -> Result<Conn, CloneError> {
        let (url, opts) = (url.clone(), opts.clone());
        Ok(self
            .run(async move { connect(&url, &opts).await })
            .await??)
    }
}

/// One stream: its thread and the source session it reads through (declared first: dropped
/// before the thread that runs its connection).
pub(crate) struct CopyStream {
    pub src: Arc<Conn>,
    pub thread: CopyThread,
}

impl CopyStream {
    /// Another stream: a session on its own thread that imports `snapshot` and takes the
    /// `ACCESS SHARE` locks on `tables` right away.
    pub async fn open(
        url: &DbUrl,
        session: &ConnectOptions,
        snapshot: &str,
        tables: &[CopyTable],
    ) -> Result<CopyStream, Failure> {
        let thread = CopyThread::start().map_err(Failure::Io)?;
        let conn = thread.connect(url, session).await.map_err(Failure::Io)?;
        let sql = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot)
        );
        conn.client.batch_execute(&sql).await.map_err(|e| {
            Failure::Io(CloneError::Db(DbError::query(
                "importing the snapshot in another session",
                &e,
            )))
        })?;
        let locked: Vec<&super::source::TableInfo> = tables.iter().map(|t| &t.table).collect();
        super::source::lock_tables(&conn.client, &locked)
            .await
            .map_err(|e| super::lock_failure(e, None))?;
        Ok(CopyStream {
            src: Arc::new(conn),
            thread,
        })
    }
}

/// The destination's sessions: no wait for the WAL flush at commit, and text values read
/// the way the source wrote them.
fn dest_session() -> ConnectOptions {
    ConnectOptions {
        settings: vec![
            ("synchronous_commit".into(), "off".into()),
            ("datestyle".into(), "ISO".into()),
            ("intervalstyle".into(), "postgres".into()),
        ],
        ..ConnectOptions::default()
    }
}

/// Copy `tables` (largest first) through `streams`, each on its thread.
pub(crate) async fn copy_tables(
    streams: &[CopyStream],
    dest: &DbUrl,
    tables: &[CopyTable],
    counters: &Counters,
) -> Result<(), Failure> {
    let queue: Arc<Mutex<VecDeque<CopyTable>>> =
        Arc::new(Mutex::new(tables.iter().cloned().collect()));
    let runs = streams.iter().map(|s| {
        let work = stream(s.src.clone(), dest.clone(), queue.clone(), counters.clone());
        async move { s.thread.run(work).await.map_err(Failure::Io)? }
    });
    super::futures_join_all(runs).await
}

async fn stream(
    src: Arc<Conn>,
    dest: DbUrl,
    queue: Arc<Mutex<VecDeque<CopyTable>>>,
    counters: Counters,
) -> Result<(), Failure> {
    let next = || queue.lock().ok().and_then(|mut q| q.pop_front());
    let Some(mut table) = next() else {
        return Ok(());
    };
    let dst = connect(&dest, &dest_session())
        .await
        .map_err(|e| Failure::Io(e.into()))?;
    loop {
        counters.set_current(Some(table.table.label.clone()));
        copy_table(&src.client, &dst.client, &table, &counters).await?;
        counters.table_done();
        match next() {
            Some(t) => table = t,
            None => return Ok(()),
        }
    }
}

/// The `COPY` statements for `t`: (source, destination).
pub(crate) fn copy_statements(t: &CopyTable) -> (String, String) {
    let table = &t.table;
    let columns = if table.columns.is_empty() {
        // A table without columns still has rows; `COPY t ()` is not valid SQL.
        String::new()
    } else {
        format!(" ({})", table.columns.join(", "))
    };
    let format = if table.binary { "binary" } else { "text" };
    let freeze = if t.fresh { ", FREEZE" } else { "" };
    (
        format!(
            "COPY {}{columns} TO STDOUT (FORMAT {format})",
            table.qualified
        ),
        format!(
            "COPY {}{columns} FROM STDIN (FORMAT {format}{freeze})",
            table.qualified
        ),
    )
}

async fn copy_table(
    src: &Client,
    dst: &Client,
    t: &CopyTable,
    counters: &Counters,
) -> Result<(), Failure> {
    let label = &t.table.label;
    let into = |e: tokio_postgres::Error| {
        Failure::Io(CloneError::Db(DbError::query(
            format!("copying {label} into the destination"),
            &e,
        )))
    };
    let from = |e: tokio_postgres::Error| {
        if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
            Failure::Locked(Some(t.table.qualified.clone()))
        } else {
            Failure::Io(CloneError::Db(DbError::query(
                format!("copying {label} from the source"),
                &e,
            )))
        }
    };
    let (copy_out, copy_in) = copy_statements(t);
    if t.fresh {
        dst.batch_execute(&format!("BEGIN; TRUNCATE ONLY {}", t.table.qualified))
            .await
            .map_err(into)?;
    }
    let sink = dst.copy_in(&copy_in).await.map_err(into)?;
    let mut sink = std::pin::pin!(sink);
    let rows = src.copy_out(&copy_out).await.map_err(from)?;
    let mut rows = std::pin::pin!(rows);
    // The source sends a message per row: pass them on in large chunks, one message (and
    // one hand-over to the connection's task) per chunk instead of per 4 KiB.
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK);
    while let Some(message) = rows.try_next().await.map_err(from)? {
        chunk.extend_from_slice(&message);
        if chunk.len() >= CHUNK {
            counters
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            sink.feed(std::io::Cursor::new(full)).await.map_err(into)?;
        }
    }
    if !chunk.is_empty() {
        counters
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        sink.feed(std::io::Cursor::new(chunk)).await.map_err(into)?;
    }
    sink.as_mut().finish().await.map_err(into)?;
    if t.fresh {
        dst.batch_execute("COMMIT").await.map_err(into)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::clone::source::TableInfo;

    fn table(columns: &[&str], binary: bool, fresh: bool) -> CopyTable {
        CopyTable {
            table: TableInfo {
                pattern: "\"s\".\"T\"".into(),
                bytes: 0,
                oid: 1,
                qualified: "s.\"T\"".into(),
                label: "s.T".into(),
                columns: columns.iter().map(|c| c.to_string()).collect(),
                binary,
            },
            fresh,
        }
    }

    #[test]
    fn statements() {
        assert_eq!(
            copy_statements(&table(&["id", "\"Name\""], true, true)),
            (
                "COPY s.\"T\" (id, \"Name\") TO STDOUT (FORMAT binary)".into(),
                "COPY s.\"T\" (id, \"Name\") FROM STDIN (FORMAT binary, FREEZE)".into()
            )
        );
        assert_eq!(
            copy_statements(&table(&["id"], false, false)),
            (
                "COPY s.\"T\" (id) TO STDOUT (FORMAT text)".into(),
                "COPY s.\"T\" (id) FROM STDIN (FORMAT text)".into()
            )
        );
        assert_eq!(
            copy_statements(&table(&[], true, false)).0,
            "COPY s.\"T\" TO STDOUT (FORMAT binary)"
        );
    }

    #[test]
    fn a_copy_thread_runs_work_and_aborts_it_when_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = CopyThread::start().unwrap();
            let here = std::thread::current().id();
            let there = t.run(async { std::thread::current().id() }).await.unwrap();
            assert_ne!(here, there, "the work ran on the copy thread");
            // A dropped run aborts its task: the flag is never set.
            let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let f = flag.clone();
            let slow = t.run(async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                f.store(true, Ordering::SeqCst);
            });
            let _ = tokio::time::timeout(std::time::Duration::from_millis(20), slow).await;
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            assert!(!flag.load(Ordering::SeqCst));
        });
    }
}
