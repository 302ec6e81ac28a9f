//! lbadm's output compared byte for byte with the real ipvsadm's (issue #13). The transcripts
//! in `tests/golden/ipvsadm/*.golden` were recorded with Debian's ipvsadm 1.31 against IPVS in
//! a 6.12 VM (`cargo xtask ipvsadm-golden`; see the README there). Here every sequence runs
//! again with lbadm against lbd, started with `--conn-table-size 4096` (IPVS's default
//! connection hash size, which ipvsadm prints as `size=4096`), and the transcripts must be
//! the same, with `ipvsadm` read as `lbadm` in messages, but for the few places where lb
//! differs on purpose ([`DIFFERENCES`]).
//!
//! No traffic runs, so counters and rates are zero on both sides and compare as they are.

use std::path::Path;

use lb_tests::{
    Testbed,
    lbd::{Lbd, lbadm},
};

/// Where lb prints something else on purpose: (sequence, command, lbadm's transcript of it).
const DIFFERENCES: &[(&str, &str, &str)] = &[
    // The data path keeps weights in 16 bits: lbadm refuses what it cannot honour.
    (
        "errors",
        "-a -t 10.0.0.1:80 -r 10.0.1.2 -g -w 70000",
        "! illegal weight specified\n= 2\n",
    ),
    // lb writes thresholds in -S, so that -R restores them.
    (
        "persistence",
        "-Sn",
        "> -A -t 10.0.0.1:80 -s rr -p 360\n\
         > -A -t 10.0.0.1:443 -s wlc -p 600 -M 255.255.255.0\n\
         > -a -t 10.0.0.1:443 -r 10.0.1.1:443 -g -w 2 -x 100 -y 50\n\
         > -a -t 10.0.0.1:443 -r 10.0.1.2:443 -g -w 0\n\
         > -A -t 10.0.0.2:80 -s mh -b mh-fallback,mh-port\n\
         > -A -u 10.0.0.1:53 -s sh -b sh-port\n\
         > -a -u 10.0.0.1:53 -r 10.0.1.1:5353 -m -w 1\n\
         = 0\n",
    ),
    // The same for an IPv6 real server.
    (
        "ipv6",
        "-Sn",
        "> -A -t 10.0.0.1:80 -s wlc\n\
         > -a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1 --tun-type ipip\n\
         > -a -t 10.0.0.1:80 -r [2001:db8::21]:80 -i -w 5 --tun-type ipip\n\
         > -A -t 10.0.0.3:443 -s wlc -p 100 -M 0.0.0.64\n\
         > -A -t [::]:80 -s rr\n\
         > -A -t [::ffff:10.0.0.9]:80 -s rr\n\
         > -A -t [2001:db8::1]:80 -s rr\n\
         > -a -t [2001:db8::1]:80 -r 10.0.1.1:80 -i -w 1 --tun-type ipip\n\
         > -a -t [2001:db8::1]:80 -r [2001:db8::12]:80 -g -w 2\n\
         > -a -t [2001:db8::1]:80 -r [2001:db8:1234:5678:9abc:def0:1234:5678]:80 -g -w 3\n\
         > -A -t [2001:db8::2]:443 -s wlc -p 360 -M 48\n\
         > -A -t [2001:db8::3]:443 -s wlc -p 100\n\
         > -A -t [2001:db8::4]:0 -s rr -p 360\n\
         > -A -t [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 -s rr\n\
         > -A -u [2001:db8::1]:53 -s sh -p 600 -M 64\n\
         > -a -u [2001:db8::1]:53 -r [2001:db8::31]:5353 -m -w 1\n\
         > -a -u [2001:db8::1]:53 -r [2001:db8::32]:5353 -m -w 1 -x 10 -y 5\n\
         = 0\n",
    ),
];

/// One command of a transcript: its arguments, standard input, and the rest of its lines.
struct Step {
    args: String,
    input: Vec<String>,
    /// `>`, `!` and `=` lines, each with its newline.
    result: String,
}

fn steps(transcript: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in transcript.lines() {
        if let Some(args) = line.strip_prefix("$ ") {
            steps.push(Step {
                args: args.to_owned(),
                input: Vec::new(),
                result: String::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            if let Some(input) = line.strip_prefix("< ") {
                step.input.push(input.to_owned());
            } else {
                step.result.push_str(line);
                step.result.push('\n');
            }
        }
    }
    steps
}

/// The lines a command printed, as in a transcript.
fn result_of(stdout: &str, stderr: &str, code: Option<i32>) -> String {
    let mut out = String::new();
    for line in stdout.lines() {
        out += &format!("> {line}\n");
    }
    for line in stderr.lines() {
        out += &format!("! {line}\n");
    }
    out += &format!(
        "= {}\n",
        code.map_or("signal".to_owned(), |c| c.to_string())
    );
    out
}

#[test]
fn lbadm_prints_what_ipvsadm_prints() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/ipvsadm");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".golden").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 6,
        "golden files missing in {}",
        dir.display()
    );

    let tb = Testbed::builder().build();
    let files = tb.lbd_files();
    let lbd = Lbd::start_with(
        &tb.director.ns,
        tb.director_ifaces(),
        tb.xdp_mode(),
        files,
        &["--conn-table-size", "4096"],
    );
    let run =
        |args: &[&str], input: Option<&str>| lbadm(&tb.director.ns, &files.socket, args, input);

    let mut wrong = Vec::new();
    let mut compared = 0;
    for name in &names {
        let golden = std::fs::read_to_string(dir.join(format!("{name}.golden"))).unwrap();
        // As the recorder: an empty table and the default timeouts.
        run(&["-C"], None).assert_success();
        run(&["--set", "900", "120", "300"], None).assert_success();
        for step in steps(&golden) {
            let args: Vec<&str> = step.args.split_whitespace().collect();
            let input = (!step.input.is_empty()).then(|| {
                let mut text = step.input.join("\n");
                text.push('\n');
                text
            });
            let ran = run(&args, input.as_deref());
            let got = result_of(&ran.stdout, &ran.stderr, ran.code());
            let want = match DIFFERENCES
                .iter()
                .find(|(n, a, _)| n == name && *a == step.args)
            {
                Some((_, _, lb)) => (*lb).to_owned(),
                None => step.result.replace("ipvsadm", "lbadm"),
            };
            compared += 1;
            if got != want {
                wrong.push(format!(
                    "{name}: $ {}\n--- ipvsadm\n{want}--- lbadm\n{got}",
                    step.args
                ));
            }
        }
    }
    drop(lbd);
    assert!(
        wrong.is_empty(),
        "{} of {compared} commands differ:\n\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
