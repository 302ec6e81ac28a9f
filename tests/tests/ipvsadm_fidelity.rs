//! lbadm against lbd where ipvsadm and the kernel have their own ways (issue #13): a lower
//! threshold above the upper one, the line a refused `-R` input fails at, the order libipvs
//! sorts services and real servers in, and `-S` lines of tunnelled real servers.

use lb_tests::Testbed;

#[test]
fn lbadm_follows_ipvsadm_and_the_kernel() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();

    // ip_vs_add_dest(): ERANGE, which ipvsadm prints with strerror, exit 255.
    tb.lbadm_stdin(&["-A", "-t", "10.0.0.1:80", "-s", "rr"], None);
    for thresholds in [&["-x", "5", "-y", "10"][..], &["-y", "1"]] {
        let mut args = vec!["-a", "-t", "10.0.0.1:80", "-r", "10.0.1.1:80", "-g"];
        args.extend_from_slice(thresholds);
        let ran = tb.try_lbadm(&args, None);
        assert_eq!(ran.code(), Some(255), "{ran}");
        assert_eq!(ran.stderr, "Numerical result out of range\n", "{ran}");
    }
    tb.lbadm_stdin(
        &[
            "-a",
            "-t",
            "10.0.0.1:80",
            "-r",
            "10.0.1.1:80",
            "-g",
            "-x",
            "10",
            "-y",
            "5",
        ],
        None,
    );

    // A restore lbd refuses says which line, and applies nothing.
    let input = "-A -t 192.168.1.99:80 -s wrr\n\
                 -a -t 192.168.1.99:80 -r 10.0.1.2:80 -i -w 2\n\
                 # the next line names a service that does not exist\n\
                 -a -t 192.168.1.98:80 -r 10.0.1.3:80 -g\n";
    let ran = tb.try_lbadm(&["-R"], Some(input));
    assert_eq!(ran.code(), Some(255), "{ran}");
    assert_eq!(
        ran.stderr,
        "Service not defined\n  in line 4 of the restore input: -a -t 192.168.1.98:80 -r \
         10.0.1.3:80 -g\n",
        "{ran}"
    );
    let ran = tb.try_lbadm(
        &["-R"],
        Some(&input.replace("192.168.1.98", "192.168.1.99")),
    );
    assert!(ran.success(), "{ran}");

    // libipvs sorts 192.168.x before 10.x (a signed 32-bit difference); -S prints the tunnel
    // type of a tunnelled real server, and (lb only) the thresholds.
    let saved = tb.lbadm(&["-Sn"]);
    assert_eq!(
        saved,
        "-A -t 192.168.1.99:80 -s wrr\n\
         -a -t 192.168.1.99:80 -r 10.0.1.2:80 -i -w 2 --tun-type ipip\n\
         -a -t 192.168.1.99:80 -r 10.0.1.3:80 -g -w 1\n\
         -A -t 10.0.0.1:80 -s rr\n\
         -a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1 -x 10 -y 5\n"
    );
    // What -S wrote, -R reads back.
    tb.lbadm(&["-C"]);
    let ran = tb.try_lbadm(&["-R"], Some(&saved));
    assert!(ran.success(), "{ran}");
    assert_eq!(tb.lbadm(&["-Sn"]), saved);
    tb.stop_lbd();
}
