//! What the benchmarks ran on: cores, CPU, memory, kernel, and the two
//! floors a synced write cannot beat here, one fdatasync and one loopback
//! round trip, each measured.

use std::io::Read as _;
use std::io::Write as _;
use std::time::Duration;
use std::time::Instant;

/// Samples of each floor; their median is reported.
const FLOOR_SAMPLES: usize = 200;

pub struct Machine {
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub etcd_version: String,
    /// Median of a 4 KiB write plus fdatasync, in the temp dir the
    /// clusters keep their data in.
    pub fdatasync: Duration,
    /// Median of a 64-byte TCP round trip over loopback.
    pub loopback_rtt: Duration,
}

impl Machine {
    pub fn describe() -> anyhow::Result<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Ok(Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                .unwrap_or_else(|| "unknown".into()),
            memory_gib: memory_kib / 1048576.0,
            kernel: command_line("uname", &["-r"]),
            etcd_version: command_line("etcd", &["--version"])
                .split_whitespace()
                .nth(2)
                .unwrap_or("?")
                .to_owned(),
            fdatasync: fdatasync_median()?,
            loopback_rtt: loopback_rtt_median()?,
        })
    }

    pub fn render(&self) -> String {
        format!(
            "Machine: {} cores ({}), {:.1} GiB, Linux {}; one 4 KiB write + fdatasync {:.3} ms (median of {FLOOR_SAMPLES}), \
             one loopback TCP round trip {:.3} ms (median of {FLOOR_SAMPLES}).",
            self.cores,
            self.cpu,
            self.memory_gib,
            self.kernel,
            self.fdatasync.as_secs_f64() * 1e3,
            self.loopback_rtt.as_secs_f64() * 1e3,
        )
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn fdatasync_median() -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let mut file = std::fs::File::create(dir.path().join("sync-probe"))?;
    let block = [0u8; 4096];
    let samples = (0..FLOOR_SAMPLES)
        .map(|_| {
            let started = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            Ok(started.elapsed())
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(median(samples))
}

fn loopback_rtt_median() -> anyhow::Result<Duration> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        for _ in 0..FLOOR_SAMPLES {
            stream.read_exact(&mut buf)?;
            stream.write_all(&buf)?;
        }
        Ok(())
    });
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut buf = [0u8; 64];
    let mut samples = Vec::with_capacity(FLOOR_SAMPLES);
    for _ in 0..FLOOR_SAMPLES {
        let started = Instant::now();
        stream.write_all(&buf)?;
        stream.read_exact(&mut buf)?;
        samples.push(started.elapsed());
    }
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(median(samples))
}
