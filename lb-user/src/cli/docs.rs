//! Man pages (roff, with `clap_mangen`) and shell completions (`clap_complete`) generated from
//! the command lines in [`super::lbd`] and [`super::lbadm`], with hand-written sections for
//! what clap does not know: signals, files, environment, and lbadm's ipvsadm(8) structure.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use clap_complete::{Generator as _, Shell};
use clap_mangen::Man;

use super::{lbadm, lbd};
use crate::{
    control::{DEFAULT_SOCKET, SOCKET_ENV},
    ipvsadm::IPVSADM_COMPAT,
    logging::FILTER_ENV,
    pinning::DEFAULT_BPFFS,
    state::DEFAULT_STATE,
};

/// Both programs are for administrators: section 8.
pub const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

/// The shells whose completions are generated, and where Debian's packages put them.
pub const SHELLS: &[(Shell, &str)] = &[
    (Shell::Bash, "usr/share/bash-completion/completions"),
    (Shell::Zsh, "usr/share/zsh/vendor-completions"),
];

/// Writes every man page into `root/usr/share/man/man8` (uncompressed) and the completions
/// into their directories under `root`, as a package lays them out; returns the files written.
pub fn write_tree(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = root.join("usr/share/man").join(format!("man{SECTION}"));
    fs::create_dir_all(&man_dir)?;
    for (name, page) in man_pages()? {
        let path = man_dir.join(format!("{name}.{SECTION}"));
        fs::write(&path, page)?;
        written.push(path);
    }
    for &(shell, dir) in SHELLS {
        let dir = root.join(dir);
        fs::create_dir_all(&dir)?;
        for (name, mut cmd) in [("lbd", lbd::command()), ("lbadm", lbadm::command())] {
            // bash-completion loads completions/NAME on demand: no `.bash` suffix.
            let file = match shell {
                Shell::Bash => name.to_owned(),
                _ => shell.file_name(name),
            };
            let path = dir.join(file);
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut out);
            fs::write(&path, out)?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Every man page, by name: `lbd`, one per lbd subcommand (`lbd-decap`, ...), `lbadm`.
pub fn man_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = vec![("lbd".to_owned(), lbd_page()?)];
    let cmd = lbd::command();
    for sub in cmd.get_subcommands() {
        let name = format!("lbd-{}", sub.get_name());
        let sub = sub
            .clone()
            .display_name(name.clone())
            .bin_name(format!("lbd {}", sub.get_name()));
        let mut page = Vec::new();
        let man = man(sub);
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        page.write_all(see_also(&["lbd(8)", "lbadm(8)"]).as_bytes())?;
        pages.push((name, page));
    }
    pages.push(("lbadm".to_owned(), lbadm_page()?));
    Ok(pages)
}

fn man(cmd: clap::Command) -> Man {
    Man::new(cmd)
        .section(SECTION)
        .manual(MANUAL)
        .source(concat!("lb ", env!("CARGO_PKG_VERSION")))
}

fn lbd_page() -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    let man = man(lbd::command());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    page.write_all(
        r#".SH DESCRIPTION
lbd loads lb's XDP program onto the director's interfaces and keeps its tables: the
virtual services and real servers that
.BR lbadm (8)
sets with ipvsadm's syntax, or that a keepalived.conf given with
.B \-\-config
describes, with its health checks. The configuration is saved to the state file and
restored when lbd starts again.
.PP
Under systemd (the packaged
.BR lbd.service ),
lbd tells the service manager when it is ready (after the data path is attached and the
control socket answers), when it reloads and when it stops
.RB ( Type=notify ).
"#
        .as_bytes(),
    )?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    write!(
        page,
        r#".SH SIGNALS
.TP
.BR SIGTERM ", " SIGINT
Shut down: detach the data path, or leave it running with
.BR \-\-on\-exit\ keep .
.TP
.B SIGHUP
Re-read the
.B \-\-config
file and apply what changed, as
.B lbd reload
does;
an invalid file changes nothing.
.SH ENVIRONMENT
.TP
.B {FILTER_ENV}
The log filter, in tracing's syntax: a level
.RB ( debug )
or directives
.RB ( info,lb_user::health=debug ).
The default is
.BR info .
.TP
.B NO_COLOR
When set, no colour in the log even on a terminal. Without a terminal there is none anyway.
.TP
.B NOTIFY_SOCKET
Set by systemd for
.BR Type=notify ;
lbd sends READY=1, RELOADING=1 and STOPPING=1 there.
.SH FILES
.TP
.I {DEFAULT_STATE}
The saved configuration
.RB ( \-\-state ).
.TP
.I {DEFAULT_SOCKET}
The control socket
.RB ( \-\-socket ).
.TP
.I {DEFAULT_BPFFS}
The data path's pinned maps and links
.RB ( \-\-bpffs ,
on the BPF file system).
.TP
.I /var/lib/lb/drain.json
Whether the director is drained
.RB ( "lbd drain" ;
beside the state file unless
.B \-\-drain\-state
says).
.TP
.I /etc/default/lbd
The packaged service's options
.RB ( LBD_OPTS ).
"#,
        FILTER_ENV = FILTER_ENV,
    )?;
    page.write_all(
        see_also(&[
            "lbadm(8)",
            "lbd-decap(8)",
            "lbd-reload(8)",
            "lbd-drain(8)",
            "lbd-undrain(8)",
            "lbd-status(8)",
            "ipvsadm(8)",
            "bird(8)",
            "keepalived.conf(5)",
            "systemd.service(5)",
        ])
        .as_bytes(),
    )?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

fn lbadm_page() -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    let man = man(lbadm::command());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    // ipvsadm(8)'s synopsis: one line per command form.
    page.write_all(b".SH SYNOPSIS\n.nf\n")?;
    for line in [
        r"\fBlbadm\fR \-A|E virtual\-service [\-s scheduler] [\-p [timeout]] [\-M netmask] [\-b sched\-flags]",
        r"\fBlbadm\fR \-D virtual\-service",
        r"\fBlbadm\fR \-C",
        r"\fBlbadm\fR \-R",
        r"\fBlbadm\fR \-S [\-n]",
        r"\fBlbadm\fR \-a|e virtual\-service \-r server\-address [\-g|i|m] [\-w weight] [\-x upper] [\-y lower]",
        r"\fBlbadm\fR \-d virtual\-service \-r server\-address",
        r"\fBlbadm\fR \-L|l [virtual\-service] [options]",
        r"\fBlbadm\fR \-Z [virtual\-service]",
        r"\fBlbadm\fR \-\-set tcp tcpfin udp",
        r"\fBlbadm\fR \-\-sysctl [NAME[=VALUE]]...",
        r"\fBlbadm\fR \-h",
        r"\fBlbadm\fR \-v",
    ] {
        writeln!(page, "{line}")?;
    }
    page.write_all(b".fi\n")?;
    write!(
        page,
        r#".SH DESCRIPTION
.B lbadm
is ipvsadm for lb: it takes
.BR ipvsadm (8)'s
command line (the syntax of ipvsadm {IPVSADM_COMPAT}), sends the changes to
.BR lbd (8)
over its control socket, and prints what ipvsadm prints: the same
.B \-L
and
.B \-S
layouts, messages and exit statuses. Scripts written for ipvsadm work with
.B ipvsadm
replaced by
.BR lbadm .
.PP
lbadm parses ipvsadm's syntax itself (as popt does for ipvsadm: options in any order,
.B \-p
with an optional value). The descriptions below follow ipvsadm(8); where lb differs, it says so.
.PP
The command has two basic formats for execution: one for a virtual service
.RB ( \-A ,
.BR \-E ,
.BR \-D )
and one for a real server of a virtual service
.RB ( \-a ,
.BR \-e ,
.BR \-d ).
A virtual service is given by
.B \-t
or
.B \-u
and its address.
"#
    )?;
    man.render_options_section(&mut page)?;
    write!(
        page,
        r#".SH EXAMPLE 1 \- SIMPLE VIRTUAL SERVICE
Distribute HTTP connections to 192.168.1.99 round robin to two real servers, with direct
routing:
.PP
.nf
lbadm \-A \-t 192.168.1.99:80 \-s rr
lbadm \-a \-t 192.168.1.99:80 \-r 192.168.1.12 \-g
lbadm \-a \-t 192.168.1.99:80 \-r 192.168.1.13 \-g
lbadm \-Ln
.fi
.PP
Save and restore the table:
.PP
.nf
lbadm \-Sn > lb.rules
lbadm \-R < lb.rules
.fi
.SH DIFFERENCES FROM IPVSADM
.IP \(bu 2
Not supported (refused with exit status 2): firewall-mark services
.RB ( \-f ),
SCTP services,
.BR \-\-pe
and
.BR \-\-ops .
.IP \(bu 2
.B \-\-start\-daemon
runs the connection synchronisation daemon inside lbd, which keeps it across restarts; it
speaks IPVS's sync protocol (version 1) and sends from lbd's scan of its connection table
(about once a second) rather than per packet.
.IP \(bu 2
.B \-R
applies its input as one transaction: nothing is applied when a line is wrong.
.IP \(bu 2
.B \-S
also writes a real server's
.B \-x
and
.BR \-y ,
so that
.B \-R
restores them.
.IP \(bu 2
lbd keeps the table across restarts in its state file; no
.B \-S
at shutdown is needed.
.IP \(bu 2
.B \-\-socket
and
.B \-\-sysctl
are lbadm's own.
.SH EXIT STATUS
As ipvsadm's: 0 on success; 2 for a command line it refuses to run (a bad value, or what lb
does not support); 255 for an unknown option or a change lbd refuses; 1 when a listing fails.
.SH ENVIRONMENT
.TP
.B {SOCKET_ENV}
lbd's control socket when
.B \-\-socket
is not given (default
.IR {DEFAULT_SOCKET} ).
.SH FILES
.TP
.I {DEFAULT_SOCKET}
lbd's control socket.
.TP
.I /etc/services
Port names.
"#
    )?;
    page.write_all(see_also(&["lbd(8)", "ipvsadm(8)"]).as_bytes())?;
    Ok(page)
}

fn see_also(pages: &[&str]) -> String {
    let refs: Vec<String> = pages
        .iter()
        .map(|p| {
            let (name, section) = p.split_once('(').expect("name(section)");
            format!(".BR {name} ({section}")
        })
        .collect();
    // `.BR name (8),` on each line but the last.
    format!(".SH SEE ALSO\n{}\n", refs.join(" ,\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        let pages = man_pages().unwrap();
        let (_, page) = pages.iter().find(|(n, _)| n == name).unwrap();
        String::from_utf8(page.clone()).unwrap()
    }

    #[test]
    fn lbadm_page_has_ipvsadms_sections_in_order() {
        let page = page("lbadm");
        let sections: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix(".SH "))
            .collect();
        assert_eq!(
            sections,
            [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "COMMANDS",
                "PARAMETERS",
                "EXAMPLE 1 \\- SIMPLE VIRTUAL SERVICE",
                "DIFFERENCES FROM IPVSADM",
                "EXIT STATUS",
                "ENVIRONMENT",
                "FILES",
                "SEE ALSO"
            ]
        );
        assert!(page.contains("add\\-service"), "{page}");
    }

    #[test]
    fn lbd_pages_cover_every_subcommand() {
        let names: Vec<String> = man_pages().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "lbd",
                "lbd-decap",
                "lbd-reload",
                "lbd-drain",
                "lbd-undrain",
                "lbd-status",
                "lbadm"
            ]
        );
        let lbd = page("lbd");
        for needle in [
            "\\-\\-log\\-format",
            "SIGHUP",
            DEFAULT_STATE,
            "lbd\\-decap(8)",
        ] {
            assert!(lbd.contains(needle), "{needle} not in:\n{lbd}");
        }
        assert!(page("lbd-decap").contains("\\-\\-iface"));
    }

    #[test]
    fn see_also_separates_references_with_commas() {
        assert_eq!(
            see_also(&["lbd(8)", "ipvsadm(8)"]),
            ".SH SEE ALSO\n.BR lbd (8) ,\n.BR ipvsadm (8)\n"
        );
    }
}
