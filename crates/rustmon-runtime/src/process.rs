//! Process metrics from cheap sources: on Linux `getrusage` and `/proc/self/{stat,statm,fd,task}`,
//! read directly through kept-open handles (no full system refresh). Elsewhere [`ProcessSampler::sample`] reports
//! [`RuntimeError::Unavailable`].

use crate::RuntimeError;

/// One reading of the process's counters, from [`ProcessSampler::sample`].
///
/// # Examples
/// ```
/// let s = rustmon_runtime::ProcessSample { cpu_user_s: 1.5, cpu_system_s: 0.5, ..Default::default() };
/// assert_eq!(s.cpu_user_s + s.cpu_system_s, 2.0);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSample {
    /// CPU time spent in user mode, seconds since the process started.
    pub cpu_user_s: f64,
    /// CPU time spent in the kernel on the process's behalf, seconds since it started.
    pub cpu_system_s: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: u64,
    /// Threads in the process.
    pub threads: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Voluntary context switches (a thread waited), summed over all the process's threads.
    pub voluntary_ctxt_switches: u64,
    /// Involuntary context switches (a thread was preempted), summed over all its threads.
    pub involuntary_ctxt_switches: u64,
    /// When the process started, ns since the Unix epoch (0 if unknown).
    pub start_unix_nanos: u64,
}

/// Reads [`ProcessSample`]s; keeps its buffers between readings.
///
/// # Examples
/// ```
/// let mut sampler = rustmon_runtime::ProcessSampler::new();
/// if let Ok(s) = sampler.sample() {
///     assert!(s.threads >= 1);
/// }
/// ```
#[derive(Debug, Default)]
pub struct ProcessSampler {
    buf: String,
    #[cfg(target_os = "linux")]
    bytes: Vec<u8>,
    #[cfg(target_os = "linux")]
    stat: Option<std::fs::File>,
    #[cfg(target_os = "linux")]
    statm: Option<std::fs::File>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    start_unix_nanos: Option<u64>,
}

impl ProcessSampler {
    /// A sampler.
    pub fn new() -> Self {
        ProcessSampler::default()
    }

    /// Whether process metrics can be read on this platform (Linux only for now).
    pub fn available() -> bool {
        cfg!(target_os = "linux")
    }

    /// Reads the process's counters now.
    ///
    /// # Errors
    /// [`RuntimeError::Unavailable`] off Linux, [`RuntimeError::Io`] or [`RuntimeError::Parse`]
    /// if `/proc` cannot be read or has an unexpected shape.
    pub fn sample(&mut self) -> Result<ProcessSample, RuntimeError> {
        #[cfg(target_os = "linux")]
        {
            linux::sample(self)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = &mut self.buf;
            Err(RuntimeError::Unavailable("process metrics"))
        }
    }
}

/// Threads by name (`/proc/self/task/*/comm`), names truncated by the kernel to 15 bytes;
/// at most `limit` distinct names, the rest counted under `_other`. Sorted by name.
///
/// # Errors
/// [`RuntimeError::Unavailable`] off Linux; [`RuntimeError::Io`] if `/proc/self/task` cannot be
/// read.
///
/// # Examples
/// ```
/// if let Ok(threads) = rustmon_runtime::thread_names(64) {
///     assert!(threads.iter().map(|(_, n)| n).sum::<u64>() >= 1);
/// }
/// ```
pub fn thread_names(limit: usize) -> Result<Vec<(String, u64)>, RuntimeError> {
    #[cfg(target_os = "linux")]
    {
        linux::thread_names(limit)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = limit;
        Err(RuntimeError::Unavailable("thread names"))
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::Read;

    use super::{ProcessSample, ProcessSampler};
    use crate::RuntimeError;

    fn read_into(path: &'static str, buf: &mut String) -> Result<(), RuntimeError> {
        buf.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(buf))
            .map_err(|source| RuntimeError::Io { path, source })?;
        Ok(())
    }

    fn parse_err(file: &'static str, message: &'static str) -> RuntimeError {
        RuntimeError::Parse { file, message }
    }

    fn sysconf(name: libc::c_int, fallback: u64) -> u64 {
        // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
        let v = unsafe { libc::sysconf(name) };
        if v > 0 { v as u64 } else { fallback }
    }

    /// Reads a small `/proc` file through a kept-open handle (one `pread` instead of
    /// open/read/close; the kernel regenerates the content at offset 0).
    fn read_kept(
        path: &'static str,
        file: &mut Option<std::fs::File>,
        buf: &mut Vec<u8>,
    ) -> Result<(), RuntimeError> {
        use std::os::unix::fs::FileExt;
        let io = |source| RuntimeError::Io { path, source };
        if file.is_none() {
            *file = Some(std::fs::File::open(path).map_err(io)?);
        }
        let Some(f) = file.as_ref() else {
            return Ok(());
        };
        buf.clear();
        buf.resize(4096, 0);
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(len * 2, 0);
            }
            match f.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) => {
                    *file = None;
                    return Err(io(e));
                }
            }
        }
        buf.truncate(len);
        Ok(())
    }

    pub(super) fn sample(s: &mut ProcessSampler) -> Result<ProcessSample, RuntimeError> {
        let ticks = sysconf(libc::_SC_CLK_TCK, 100) as f64;
        let page = sysconf(libc::_SC_PAGESIZE, 4096);
        let mut out = ProcessSample::default();

        // CPU times (µs resolution) and context switches, summed over every thread of the
        // process including finished ones: one syscall.
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable `rusage`.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return Err(RuntimeError::Io {
                path: "getrusage",
                source: std::io::Error::last_os_error(),
            });
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        out.cpu_user_s = secs(ru.ru_utime);
        out.cpu_system_s = secs(ru.ru_stime);
        out.voluntary_ctxt_switches = ru.ru_nvcsw as u64;
        out.involuntary_ctxt_switches = ru.ru_nivcsw as u64;

        read_kept("/proc/self/stat", &mut s.stat, &mut s.bytes)?;
        let text =
            std::str::from_utf8(&s.bytes).map_err(|_| parse_err("/proc/self/stat", "not UTF-8"))?;
        // `pid (comm) state ...`: comm may hold spaces and parentheses, so split after the last `)`.
        let rest = text
            .rfind(')')
            .map(|i| &text[i + 1..])
            .ok_or_else(|| parse_err("/proc/self/stat", "no `)` after the command name"))?;
        let mut threads = None;
        let mut start_ticks = None;
        // Field n of proc(5) is the (n - 2)th after the command name.
        for (i, f) in rest.split_ascii_whitespace().enumerate() {
            match i + 3 {
                20 => threads = f.parse::<u64>().ok(),
                22 => {
                    start_ticks = f.parse::<u64>().ok();
                    break;
                }
                _ => {}
            }
        }
        out.threads = threads.ok_or_else(|| parse_err("/proc/self/stat", "missing num_threads"))?;
        let start_ticks =
            start_ticks.ok_or_else(|| parse_err("/proc/self/stat", "missing starttime"))?;

        read_kept("/proc/self/statm", &mut s.statm, &mut s.bytes)?;
        let text = std::str::from_utf8(&s.bytes).unwrap_or("");
        let mut statm = text.split_ascii_whitespace().map(|f| f.parse::<u64>());
        match (statm.next(), statm.next()) {
            (Some(Ok(size)), Some(Ok(resident))) => {
                out.virtual_bytes = size * page;
                out.rss_bytes = resident * page;
            }
            _ => return Err(parse_err("/proc/self/statm", "expected size and resident")),
        }

        // Since Linux 6.2 the size of /proc/self/fd is the number of open descriptors; count
        // the entries on older kernels.
        out.open_fds = match std::fs::metadata("/proc/self/fd") {
            Ok(m) if m.len() > 0 => m.len(),
            _ => std::fs::read_dir("/proc/self/fd")
                .map_err(|source| RuntimeError::Io {
                    path: "/proc/self/fd",
                    source,
                })?
                .count() as u64,
        };

        if s.start_unix_nanos.is_none() {
            read_into("/proc/stat", &mut s.buf)?;
            let btime = s
                .buf
                .lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| parse_err("/proc/stat", "no btime line"))?;
            let start_s = btime as f64 + start_ticks as f64 / ticks;
            s.start_unix_nanos = Some((start_s * 1e9) as u64);
        }
        out.start_unix_nanos = s.start_unix_nanos.unwrap_or(0);
        Ok(out)
    }

    pub(super) fn thread_names(limit: usize) -> Result<Vec<(String, u64)>, RuntimeError> {
        let dir = std::fs::read_dir("/proc/self/task").map_err(|source| RuntimeError::Io {
            path: "/proc/self/task",
            source,
        })?;
        let mut names: Vec<(String, u64)> = Vec::new();
        let mut other = 0;
        let mut buf = String::new();
        for entry in dir.flatten() {
            buf.clear();
            let mut path = entry.path();
            path.push("comm");
            // A thread may exit between listing and reading: skip it.
            if std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_string(&mut buf))
                .is_err()
            {
                continue;
            }
            let name = buf.trim_end();
            if let Some(i) = names.iter().position(|(n, _)| n == name) {
                names[i].1 += 1;
            } else if names.len() < limit {
                names.push((name.to_owned(), 1));
            } else {
                other += 1;
            }
        }
        names.sort();
        if other > 0 {
            names.push(("_other".to_owned(), other));
        }
        Ok(names)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let mut s = ProcessSampler::new();
        let a = s.sample().unwrap();
        assert!(a.rss_bytes > 0 && a.virtual_bytes >= a.rss_bytes);
        assert!(a.threads >= 1 && a.open_fds >= 3);
        assert!(a.start_unix_nanos > 1_500_000_000_000_000_000);
        assert!(a.start_unix_nanos <= rustmon_core::now_unix_nanos());
    }

    #[test]
    fn names_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("rtm-test-named".into())
            .spawn(move || {
                // The name is set by the thread itself as it starts.
                let _ = started_tx.send(());
                rx.recv()
            })
            .unwrap();
        started.recv().unwrap();
        let names = thread_names(64).unwrap();
        assert!(
            names.iter().any(|(n, c)| n == "rtm-test-named" && *c == 1),
            "{names:?}"
        );
        drop(tx);
        let _ = t.join();
        let capped = thread_names(0).unwrap();
        assert_eq!(capped.len(), 1);
        assert_eq!(capped[0].0, "_other");
    }
}
