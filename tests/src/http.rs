//! HTTP on both ends: an nginx per real server that answers with the server's name, `curl`
//! from the client counting who answered, and load generators (`wrk`, `ab`) with their
//! reports parsed.

use std::{collections::BTreeMap, fmt, net::Ipv4Addr, path::Path, time::Duration};

use crate::cmd::{Daemon, Ran};
use crate::netns::Netns;

/// Writes the nginx configuration for real server `name` into `dir` and returns its path.
/// nginx answers `200 "<name>\n"` on every port in `ports`, serves the files in `dir/files/`
/// under `/files/`, and logs one line per request,
/// `server_addr:server_port remote_addr:remote_port status`, to `dir/access.log`, so a test can
/// tell which address a request arrived at (the VIP, in DR) and count requests per server.
pub fn nginx_config(dir: &Path, name: &str, ports: &[u16]) -> std::path::PathBuf {
    nginx_config_families(dir, name, ports, false)
}

/// [`nginx_config`], listening on IPv6 too (`listen [::]:PORT`) when `ipv6`; an IPv6
/// `server_addr` is logged without brackets (`fd00::99:80 ...`).
pub fn nginx_config_families(
    dir: &Path,
    name: &str,
    ports: &[u16],
    ipv6: bool,
) -> std::path::PathBuf {
    let d = dir.display();
    let listens: String = ports
        .iter()
        .map(|port| {
            let mut listen = format!("        listen {port} reuseport;\n");
            if ipv6 {
                listen += &format!("        listen [::]:{port} reuseport;\n");
            }
            listen
        })
        .collect();
    let conf = format!(
        r#"# nginx for real server {name}; started in the foreground by lb-tests.
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{
    worker_connections 1024;
}}
http {{
    default_type text/plain;
    log_format lb '$server_addr:$server_port $remote_addr:$remote_port $status';
    access_log {d}/access.log lb;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
{listens}        location / {{
            return 200 "{name}\n";
        }}
        location /files/ {{
            alias {d}/files/;
        }}
    }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

/// Starts nginx with `conf` in `ns`, in the foreground (its master is our child).
pub fn start_nginx(ns: &Netns, dir: &Path, conf: &Path) -> Daemon {
    let log = dir.join("nginx.out");
    let argv = ns.argv(&[
        "nginx",
        "-e",
        &dir.join("error.log").display().to_string(),
        "-p",
        &format!("{}/", dir.display()),
        "-c",
        &conf.display().to_string(),
    ]);
    Daemon::spawn(&format!("nginx in {}", ns.name()), argv, &log, &log)
}

/// Counts the requests in an nginx access log written with [`nginx_config`]'s format that
/// arrived at `local` (`addr:port`), and, if `remote` is given, came from that address.
///
/// Panics when the log is missing or holds a line not in that format: nginx creates its log
/// when it starts, so either means nginx never ran or logging broke, and reading them as "no
/// requests" would let every "none served here" check pass.
#[track_caller]
pub fn count_served(access_log: &Path, local: &str, remote: Option<Ipv4Addr>) -> usize {
    let text = std::fs::read_to_string(access_log)
        .unwrap_or_else(|e| panic!("reading the access log {}: {e}", access_log.display()));
    let remote = remote.map(|ip| format!("{ip}:"));
    let mut served = 0;
    for line in text.lines() {
        let (at, from) = parse_access_line(line).unwrap_or_else(|| {
            panic!(
                "{}: not `local_addr:port remote_addr:port status`: {line:?}",
                access_log.display()
            )
        });
        if at == local && remote.as_deref().is_none_or(|ip| from.starts_with(ip)) {
            served += 1;
        }
    }
    served
}

/// The local and remote `addr:port` of one access-log line, `None` unless the line is
/// exactly `addr:port addr:port status`.
fn parse_access_line(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.split_whitespace();
    let (local, remote, status) = (fields.next()?, fields.next()?, fields.next()?);
    let has_port = |a: &str| {
        a.rsplit_once(':')
            .is_some_and(|(addr, port)| !addr.is_empty() && port.parse::<u16>().is_ok())
    };
    (fields.next().is_none()
        && has_port(local)
        && has_port(remote)
        && status.len() == 3
        && status.parse::<u16>().is_ok())
    .then_some((local, remote))
}

/// One HTTP exchange as curl saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status; 0 when the transfer failed (no connection, timeout, reset).
    pub status: u16,
    /// The body, without its trailing newline: the real server's name.
    pub body: String,
}

/// The replies to a series of requests, in order.
#[derive(Clone, Debug)]
pub struct Tally {
    pub requested: usize,
    pub replies: Vec<Reply>,
    /// The curl run, kept for failure messages.
    pub ran: Ran,
}

impl Tally {
    /// The bodies (real server names) in order.
    pub fn names(&self) -> Vec<&str> {
        self.replies.iter().map(|r| r.body.as_str()).collect()
    }

    /// How many replies came from each name.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for reply in &self.replies {
            *counts.entry(reply.body.clone()).or_default() += 1;
        }
        counts
    }

    pub fn count(&self, name: &str) -> usize {
        self.replies.iter().filter(|r| r.body == name).count()
    }

    /// Panics unless every request got a 200 reply.
    #[track_caller]
    pub fn assert_all_ok(&self) -> &Self {
        let ok =
            self.replies.len() == self.requested && self.replies.iter().all(|r| r.status == 200);
        assert!(ok, "not every request got a 200 reply:\n{self}");
        self
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ok = self.replies.iter().filter(|r| r.status == 200).count();
        writeln!(
            f,
            "  {} requested, {} replies, {ok} with status 200; by body: {:?}",
            self.requested,
            self.replies.len(),
            self.counts()
        )?;
        let shown: Vec<String> = self
            .replies
            .iter()
            .take(40)
            .map(|r| format!("{}:{}", r.status, r.body))
            .collect();
        writeln!(f, "  first replies: {}", shown.join(" "))?;
        write!(f, "{}", self.ran)
    }
}

/// The arguments for curl requesting `url` `n` times in one process, each over a new
/// connection (`Connection: close`), printing each body followed by a status line.
pub fn curl_argv(url: &str, n: usize) -> Vec<String> {
    assert!(n > 0);
    let sep = if url.contains('?') { '&' } else { '?' };
    // curl's URL globbing expands `[1-N]` to N URLs fetched one after another.
    let url = format!("{url}{sep}n=[1-{n}]");
    [
        "curl",
        "--silent",
        "--show-error",
        "--fail-early",
        "--connect-timeout",
        "3",
        "--max-time",
        "5",
        "--header",
        "Connection: close",
        "--write-out",
        "%{http_code}\\n",
        &url,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Parses [`curl_argv`]'s output: each transfer prints its body, then its status on a line
/// of its own (`000` when it failed).
pub fn parse_curl(requested: usize, ran: Ran) -> Tally {
    let mut replies = Vec::new();
    let mut body = Vec::new();
    for line in ran.stdout.lines() {
        let is_status = line.len() == 3 && line.bytes().all(|b| b.is_ascii_digit());
        if is_status {
            replies.push(Reply {
                status: line.parse().expect("three digits"),
                body: body.join("\n"),
            });
            body.clear();
        } else {
            body.push(line);
        }
    }
    Tally {
        requested,
        replies,
        ran,
    }
}

/// Which load generator, and how hard it pushes.
#[derive(Clone, Copy, Debug)]
pub enum LoadGen {
    /// `wrk` with `Connection: close` (a new connection per request) until stopped.
    Wrk { connections: u32 },
    /// `ab` without keep-alive (`-k` not given) until stopped or `requests` are done.
    Ab { concurrency: u32, requests: u32 },
}

impl LoadGen {
    pub fn argv(self, url: &str) -> Vec<String> {
        let words: Vec<String> = match self {
            LoadGen::Wrk { connections } => vec![
                "wrk".into(),
                "--threads".into(),
                "1".into(),
                "--connections".into(),
                connections.to_string(),
                // Long enough to outlast the test; `stop` ends it with SIGINT.
                "--duration".into(),
                "600s".into(),
                "--timeout".into(),
                "5s".into(),
                "--header".into(),
                "Connection: close".into(),
                url.into(),
            ],
            LoadGen::Ab {
                concurrency,
                requests,
            } => vec![
                "ab".into(),
                // Count receive errors as failed requests instead of aborting on the first.
                "-r".into(),
                "-s".into(),
                "5".into(),
                "-c".into(),
                concurrency.to_string(),
                "-n".into(),
                requests.to_string(),
                url.into(),
            ],
        };
        words
    }

    pub fn concurrency(self) -> u32 {
        match self {
            LoadGen::Wrk { connections } => connections,
            LoadGen::Ab { concurrency, .. } => concurrency,
        }
    }
}

/// A load generator running in the background.
pub struct Load {
    pub kind: LoadGen,
    pub daemon: Daemon,
}

/// What a load generator reported.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests completed.
    pub requests: u64,
    /// Requests that failed: socket errors (connect, read, write, timeout) for wrk, "Failed
    /// requests" for ab.
    pub failed: u64,
    /// Replies with a status other than 2xx (wrk: other than 2xx/3xx).
    pub non_2xx: u64,
    /// The generator's whole output.
    pub output: String,
}

impl Load {
    /// Interrupts the generator (SIGINT: both print their summary and exit) and parses its
    /// report.
    #[track_caller]
    pub fn stop(mut self) -> LoadReport {
        // ab may already have finished its -n requests; then this only reaps it.
        self.daemon
            .stop(libc::SIGINT, std::time::Duration::from_secs(15));
        let stdout = self.daemon.stdout_text();
        let stderr = self.daemon.stderr_text();
        let report = match self.kind {
            LoadGen::Wrk { .. } => parse_wrk(&stdout),
            LoadGen::Ab { .. } => parse_ab(&stdout).or_else(|| parse_ab_aborted(&stdout)),
        };
        let Some(mut report) = report else {
            panic!(
                "cannot parse the load generator's report\n{}",
                self.daemon.report()
            );
        };
        if !stderr.trim().is_empty() {
            report.output = format!("{stdout}\n(stderr)\n{stderr}");
        }
        report
    }
}

impl Load {
    /// Waits up to `timeout` for a generator given a fixed amount of work (`ab -n`) to finish
    /// by itself, and parses its report; interrupts it and panics if it does not.
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> LoadReport {
        let deadline = std::time::Instant::now() + timeout;
        while self.daemon.is_running() {
            if std::time::Instant::now() >= deadline {
                self.daemon.stop(libc::SIGINT, Duration::from_secs(15));
                panic!(
                    "{} did not finish within {timeout:?}; interrupted it\n{}",
                    self.daemon.what(),
                    self.daemon.report()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stop()
    }
}

fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Parses wrk's summary: `N requests in ...`, optional `Socket errors: connect A, read B,
/// write C, timeout D` and `Non-2xx or 3xx responses: N`.
pub fn parse_wrk(text: &str) -> Option<LoadReport> {
    let requests = text.lines().find_map(|line| {
        let line = line.trim();
        let (n, rest) = line.split_once(' ')?;
        rest.starts_with("requests in ").then(|| n.parse().ok())?
    })?;
    let failed = match text
        .lines()
        .find(|l| l.trim_start().starts_with("Socket errors:"))
    {
        Some(line) => ["connect", "read", "write", "timeout"]
            .iter()
            .map(|what| number_after(line, what))
            .sum::<Option<u64>>()?,
        None => 0,
    };
    let non_2xx = number_after(text, "Non-2xx or 3xx responses:").unwrap_or(0);
    Some(LoadReport {
        requests,
        failed,
        non_2xx,
        output: text.to_owned(),
    })
}

/// Parses ab's summary: `Complete requests:`, `Failed requests:` and, when present,
/// `Non-2xx responses:`.
pub fn parse_ab(text: &str) -> Option<LoadReport> {
    Some(LoadReport {
        requests: number_after(text, "Complete requests:")?,
        failed: number_after(text, "Failed requests:")?,
        non_2xx: number_after(text, "Non-2xx responses:").unwrap_or(0),
        output: text.to_owned(),
    })
}

/// ab's output when it gave up (`apr_pollset_poll: The timeout specified has expired` on
/// stderr) before printing a summary: `Total of N requests completed`. Nothing failed as far
/// as it counted; the requests it never finished are simply missing from `requests`.
pub fn parse_ab_aborted(text: &str) -> Option<LoadReport> {
    Some(LoadReport {
        requests: number_after(text, "Total of")?,
        failed: 0,
        non_2xx: 0,
        output: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::{os::unix::process::ExitStatusExt as _, process::ExitStatus};

    use super::*;

    fn ran(stdout: &str, code: i32) -> Ran {
        Ran {
            argv: vec!["curl".into()],
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn curl_output_splits_into_replies() {
        let tally = parse_curl(4, ran("rs1\n200\nrs2\n200\n000\n", 7));
        assert_eq!(
            tally.replies,
            vec![
                Reply {
                    status: 200,
                    body: "rs1".into()
                },
                Reply {
                    status: 200,
                    body: "rs2".into()
                },
                Reply {
                    status: 0,
                    body: String::new()
                },
            ]
        );
        assert_eq!(tally.names(), ["rs1", "rs2", ""]);
        assert_eq!(tally.count("rs1"), 1);
        let all_ok = std::panic::catch_unwind(|| {
            tally.assert_all_ok();
        });
        assert!(all_ok.is_err(), "3 of 4 replies, one failed, is not all ok");
    }

    #[test]
    fn curl_glob_asks_for_n_new_connections() {
        let argv = curl_argv("http://10.0.0.99:80/", 400);
        assert_eq!(argv.last().unwrap(), "http://10.0.0.99:80/?n=[1-400]");
        assert!(argv.iter().any(|a| a == "Connection: close"));
        let argv = curl_argv("http://10.0.0.99/?x=1", 2);
        assert_eq!(argv.last().unwrap(), "http://10.0.0.99/?x=1&n=[1-2]");
    }

    #[test]
    fn wrk_summary_with_errors() {
        let text = "Running 10m test @ http://10.0.0.99:80/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.00ms    1.00ms  10.00ms   90.00%
    Req/Sec     5.00k   100.00     6.00k    75.00%
  50000 requests in 10.00s, 7.00MB read
  Socket errors: connect 1, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   5000.00
Transfer/sec:    700.00KB
";
        let report = parse_wrk(text).unwrap();
        assert_eq!(
            (report.requests, report.failed, report.non_2xx),
            (50000, 16, 7)
        );
    }

    #[test]
    fn wrk_summary_without_errors() {
        let text = "  2754 requests in 401.70ms, 392.66KB read\nRequests/sec:   6855.85\n";
        let report = parse_wrk(text).unwrap();
        assert_eq!(
            (report.requests, report.failed, report.non_2xx),
            (2754, 0, 0)
        );
        assert!(parse_wrk("wrk: unable to connect").is_none());
    }

    #[test]
    fn ab_summary() {
        let text = "Concurrency Level:      4
Complete requests:      1000
Failed requests:        5
   (Connect: 0, Receive: 5, Length: 0, Exceptions: 0)
Non-2xx responses:      2
";
        let report = parse_ab(text).unwrap();
        assert_eq!(
            (report.requests, report.failed, report.non_2xx),
            (1000, 5, 2)
        );
        let aborted = "Benchmarking 10.0.0.99 (be patient)\nTotal of 4992 requests completed\n";
        assert!(parse_ab(aborted).is_none());
        let report = parse_ab_aborted(aborted).unwrap();
        assert_eq!((report.requests, report.failed), (4992, 0));
        let clean = "Complete requests:      340\nFailed requests:        0\n";
        let report = parse_ab(clean).unwrap();
        assert_eq!(
            (report.requests, report.failed, report.non_2xx),
            (340, 0, 0)
        );
    }

    #[test]
    fn access_log_counts_by_local_address() {
        let dir = std::env::temp_dir().join(format!("lb-tests-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("access.log");
        std::fs::write(
            &log,
            "10.0.0.99:80 10.0.0.10:4000 200\n10.0.0.12:80 10.0.0.10:4001 200\n\
             10.0.0.99:80 10.0.0.10:4002 200\n10.0.0.99:8080 10.0.0.10:4003 200\n",
        )
        .unwrap();
        assert_eq!(count_served(&log, "10.0.0.99:80", None), 2);
        assert_eq!(count_served(&log, "10.0.0.99:8080", None), 1);
        let client = Ipv4Addr::new(10, 0, 0, 10);
        assert_eq!(count_served(&log, "10.0.0.99:80", Some(client)), 2);
        assert_eq!(count_served(&log, "10.0.0.12:80", Some(client)), 1);
        let other = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(count_served(&log, "10.0.0.99:80", Some(other)), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    #[should_panic(expected = "reading the access log")]
    fn missing_access_log_is_an_error_not_zero() {
        count_served(
            Path::new("/nonexistent/lb-tests/access.log"),
            "10.0.0.99:80",
            None,
        );
    }

    #[test]
    fn access_lines_in_another_format_are_refused() {
        assert_eq!(
            parse_access_line("fd00::99:80 fd00::10:4000 200"),
            Some(("fd00::99:80", "fd00::10:4000"))
        );
        for line in [
            "",
            "10.0.0.99:80 10.0.0.10:4000",
            "10.0.0.99 10.0.0.10:4000 200",
            "10.0.0.99:80 10.0.0.10:4000 200 extra",
            "10.0.0.10 - - [07/Dec/2026:18:00:00 +0000] \"GET / HTTP/1.1\" 200 4",
        ] {
            assert_eq!(parse_access_line(line), None, "{line:?}");
        }
    }
}
