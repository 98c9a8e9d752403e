//! The pipe between `pg_dump` and `pg_restore`. On Linux pgship moves pages from pipe to pipe
//! with splice(2), counting them without copying; with a dump file to write it copies through
//! a 256 KiB buffer. Either way it waits a moment after a small read so that the pipe fills:
//! `pg_dump` writes 4 KiB at a time.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};

/// The copy buffer between `pg_dump` and `pg_restore`.
const COPY_BUFFER: usize = 256 * 1024;
/// Pipe capacity asked of the kernel (the default is 64 KiB).
const PIPE_SIZE: i32 = 1 << 20;
/// How long the pump lets a pipe fill after a small read.
const PUMP_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Move `pg_dump`'s output into `pg_restore`, counting bytes; with a `sink`, also into the
/// dump file (and if `pg_restore` stops reading early, the file is still completed).
pub(crate) async fn pump(
    from: ChildStdout,
    to: ChildStdin,
    sink: Option<tokio::fs::File>,
    bytes: &Arc<AtomicU64>,
) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if sink.is_none() {
        return splice_pump(from, to, bytes.clone()).await;
    }
    copy_pump(from, to, sink, bytes).await
}

/// Copy through a buffer (needed to tee into a file).
async fn copy_pump(
    mut from: ChildStdout,
    to: ChildStdin,
    mut sink: Option<tokio::fs::File>,
    bytes: &AtomicU64,
) -> std::io::Result<()> {
    let mut to = Some(to);
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if let Some(f) = sink.as_mut() {
            f.write_all(&buf[..n]).await?;
        }
        if let Some(t) = to.as_mut() {
            if let Err(e) = t.write_all(&buf[..n]).await {
                if e.kind() != std::io::ErrorKind::BrokenPipe || sink.is_none() {
                    return Err(e);
                }
                to = None;
            }
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        if n < COPY_BUFFER / 4 {
            // pg_dump writes 4 KiB at a time: let the pipe fill rather than wake per write.
            tokio::time::sleep(PUMP_PAUSE).await;
        }
    }
    if let Some(mut t) = to {
        // Closing stdin tells pg_restore the archive is complete.
        let _ = t.shutdown().await;
    }
    if let Some(mut f) = sink {
        f.flush().await?;
        f.sync_all().await?;
    }
    Ok(())
}

/// Move pages from pipe to pipe with splice(2) on a blocking thread: copying 500 MB through
/// pgship's memory cost ~0.6 s of CPU that the destination server needs. The thread ends when
/// pg_dump closes its end or pg_restore its own (also when the clone is dropped and both are
/// killed).
#[cfg(target_os = "linux")]
async fn splice_pump(
    from: ChildStdout,
    to: ChildStdin,
    bytes: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let from = from.into_owned_fd()?;
    let to = to.into_owned_fd()?;
    set_blocking(&from)?;
    set_blocking(&to)?;
    tokio::task::spawn_blocking(move || {
        loop {
            // SAFETY: both descriptors are pipes owned by this closure; no user memory is
            // passed.
            let n = unsafe {
                libc::splice(
                    from.as_raw_fd(),
                    std::ptr::null_mut(),
                    to.as_raw_fd(),
                    std::ptr::null_mut(),
                    PIPE_SIZE as usize,
                    libc::SPLICE_F_MOVE,
                )
            };
            match n {
                0 => return Ok(()),
                n if n > 0 => {
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    if (n as usize) < COPY_BUFFER / 4 {
                        std::thread::sleep(PUMP_PAUSE);
                    }
                }
                _ => {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
            }
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(target_os = "linux")]
fn set_blocking(fd: &impl AsRawFd) -> std::io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn set_pipe_size(fd: &impl AsRawFd) {
    // SAFETY: F_SETPIPE_SZ on a pipe we own; failure (e.g. above pipe-max-size) is harmless.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
}
