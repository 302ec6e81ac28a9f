//! Byte-exact checks against the kernel's structures (`struct ip_vs_sync_mesg`,
//! `struct ip_vs_sync_v4`, `struct ip_vs_sync_v6`, the options), written out field by field.

use super::*;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

/// A DR connection 10.0.0.1:40000 -> 10.0.0.99:80 -> 10.0.0.12:80, ESTABLISHED, 900 s.
fn dr_conn() -> SyncConn {
    SyncConn {
        protocol: 6,
        flags: flags::DROUTE,
        state: 1,
        caddr: v4("10.0.0.1"),
        cport: 40000,
        vaddr: v4("10.0.0.99"),
        vport: 80,
        daddr: v4("10.0.0.12"),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

/// `struct ip_vs_sync_v4` of [`dr_conn`], field by field.
const DR_CONN: [u8; 36] = [
    0x00, // type: IPv4
    0x06, // protocol: TCP
    0x00, 0x24, // ver_size: version 0, size 36
    0x00, 0x00, 0x00, 0x03, // flags: IP_VS_CONN_F_DROUTE
    0x00, 0x01, // state: IP_VS_TCP_S_ESTABLISHED
    0x9c, 0x40, // cport 40000
    0x00, 0x50, // vport 80
    0x00, 0x50, // dport 80
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x03, 0x84, // timeout 900
    10, 0, 0, 1, // caddr
    10, 0, 0, 99, // vaddr
    10, 0, 0, 12, // daddr
];

#[test]
fn one_ipv4_connection_is_the_kernels_layout() {
    let messages = pack(7, &[dr_conn()], 1472);
    assert_eq!(messages.len(), 1);
    let mut expected = vec![
        0x00, // reserved: 0 (version 0 readers drop the message)
        0x07, // syncid
        0x00, 0x2c, // size: 8 + 36
        0x01, // nr_conns
        0x01, // version
        0x00, 0x00, // spare
    ];
    expected.extend_from_slice(&DR_CONN);
    assert_eq!(messages[0], expected);
    let decoded = decode(&messages[0]).unwrap();
    assert_eq!(decoded.syncid, 7);
    assert_eq!(decoded.conns, vec![dr_conn()]);
    assert_eq!((decoded.skipped, decoded.error), (0, None));
}

#[test]
fn ipv6_connection_with_sequence_options() {
    let conn = SyncConn {
        protocol: 17,
        flags: flags::MASQ | flags::INACTIVE | flags::SEQ_MASK,
        state: 0,
        caddr: v6("2001:db8::1"),
        cport: 53000,
        vaddr: v6("2001:db8::99"),
        vport: 53,
        daddr: v6("2001:db8:1::12"),
        dport: 5353,
        fwmark: 0x1234_5678,
        timeout: 300,
        seq: Some((
            Seq {
                init_seq: 1,
                delta: 2,
                previous_delta: 3,
            },
            Seq {
                init_seq: 0xdead_beef,
                delta: 5,
                previous_delta: 6,
            },
        )),
        pe_data: None,
        pe_name: None,
    };
    assert_eq!(conn.wire_len(), Some(72 + 26));
    let message = &pack(0, std::slice::from_ref(&conn), 1472)[0];
    let mut expected = vec![0, 0, 0, 8 + 98, 1, 1, 0, 0];
    expected.extend_from_slice(&[
        0x01, // type: IPv6
        0x11, // protocol: UDP
        0x00, 0x62, // size 98
        0x00, 0x00, 0x07, 0x00, // flags: MASQ | INACTIVE | IN_SEQ | OUT_SEQ
        0x00, 0x00, // state
        0xcf, 0x08, // cport 53000
        0x00, 0x35, // vport 53
        0x14, 0xe9, // dport 5353
        0x12, 0x34, 0x56, 0x78, // fwmark
        0x00, 0x00, 0x01, 0x2c, // timeout 300
    ]);
    for a in ["2001:db8::1", "2001:db8::99", "2001:db8:1::12"] {
        expected.extend_from_slice(&a.parse::<Ipv6Addr>().unwrap().octets());
    }
    expected.extend_from_slice(&[
        0x01, 0x18, // IPVS_OPT_SEQ_DATA, 24 bytes
        0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // in_seq
        0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 5, 0, 0, 0, 6, // out_seq
    ]);
    assert_eq!(message, &expected);
    assert_eq!(decode(message).unwrap().conns, vec![conn]);
}

#[test]
fn persistence_template() {
    let template = SyncConn {
        flags: flags::TEMPLATE | flags::DROUTE,
        state: 0,
        caddr: v4("10.0.0.0"),
        cport: 0,
        timeout: 360,
        ..dr_conn()
    };
    let message = &pack(1, std::slice::from_ref(&template), 1472)[0];
    assert_eq!(&message[8 + 4..8 + 8], &[0x00, 0x00, 0x10, 0x03]);
    assert_eq!(&message[8 + 10..8 + 12], &[0, 0]);
    assert_eq!(decode(message).unwrap().conns, vec![template]);
}

#[test]
fn entries_after_odd_options_start_on_four_bytes() {
    // PE data of 3 bytes and a name of 3: 36 + 5 + 5 = 46 bytes, so 2 bytes of padding
    // before the next entry; the header's size counts them, the entry's does not.
    let with_pe = SyncConn {
        pe_data: Some(vec![1, 2, 3]),
        pe_name: Some(b"sip".to_vec()),
        ..dr_conn()
    };
    let message = &pack(0, &[with_pe.clone(), dr_conn()], 1472)[0];
    assert_eq!(message.len(), 8 + 46 + 2 + 36);
    assert_eq!(u16::from_be_bytes([message[2], message[3]]), 92);
    assert_eq!(message[4], 2);
    assert_eq!(&message[8 + 2..8 + 4], &[0, 46]);
    assert_eq!(
        &message[8 + 36..8 + 46],
        &[2, 3, 1, 2, 3, 3, 3, b's', b'i', b'p']
    );
    assert_eq!(&message[54..56], &[0, 0]);
    assert_eq!(&message[56..], &DR_CONN);
    assert_eq!(decode(message).unwrap().conns, vec![with_pe, dr_conn()]);
}

#[test]
fn packing_splits_at_the_maximum_length() {
    let conns = vec![dr_conn(); 5];
    // Room for two entries: 8 + 2 * 36 = 80.
    let messages = pack(3, &conns, 80);
    assert_eq!(
        messages.iter().map(|m| m[4]).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    for m in &messages {
        assert!(m.len() <= 80);
        let d = decode(m).unwrap();
        assert_eq!(d.syncid, 3);
        assert!(d.conns.iter().all(|c| *c == dr_conn()));
    }
    // Too small for even one: each entry alone, as the kernel sizes a buffer for it.
    assert_eq!(pack(0, &conns[..2], 10).len(), 2);
    // At most 255 entries a message.
    let many = pack(0, &vec![dr_conn(); 300], 65507);
    assert_eq!(many.iter().map(|m| m[4]).collect::<Vec<_>>(), vec![255, 45]);
    assert!(pack(0, &[], 1472).is_empty());
}

#[test]
fn mixed_families_are_not_sent() {
    let mixed = SyncConn {
        daddr: v6("2001:db8::12"),
        ..dr_conn()
    };
    assert_eq!(mixed.wire_len(), None);
    assert_eq!(pack(0, &[mixed, dr_conn()], 1472)[0][4], 1);
}

fn message_of(entries: &[&[u8]]) -> Vec<u8> {
    let mut m = vec![0, 9, 0, 0, entries.len() as u8, 1, 0, 0];
    for e in entries {
        m.resize(m.len().div_ceil(4) * 4, 0);
        m.extend_from_slice(e);
    }
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

#[test]
fn message_level_refusals() {
    assert_eq!(decode(&[0, 1, 0]), Err(DecodeError::HeaderTooShort));
    let mut m = message_of(&[&DR_CONN]);
    m.push(0);
    assert_eq!(decode(&m), Err(DecodeError::BadSize));
    // Version 0: nr_conns in the first byte, no version byte.
    let mut v0 = message_of(&[&DR_CONN]);
    v0[0] = 1;
    assert_eq!(decode(&v0), Err(DecodeError::NotVersion1));
    let mut spare = message_of(&[&DR_CONN]);
    spare[7] = 1;
    assert_eq!(decode(&spare), Err(DecodeError::NotVersion1));
}

#[test]
fn a_bad_entry_drops_the_rest_and_keeps_what_came_before() {
    let mut versioned = DR_CONN;
    versioned[2] = 0x10; // entry version 1
    let d = decode(&message_of(&[&DR_CONN, &versioned, &DR_CONN])).unwrap();
    assert_eq!(d.conns, vec![dr_conn()]);
    assert_eq!(d.error, Some(DecodeError::EntryVersion(1)));

    let mut big = DR_CONN;
    big[3] = 200;
    let d = decode(&message_of(&[&big])).unwrap();
    assert_eq!(d.error, Some(DecodeError::EntryBeyondMessage));

    let mut typed = DR_CONN;
    typed[0] = 2;
    assert_eq!(
        decode(&message_of(&[&typed])).unwrap().error,
        Some(DecodeError::EntryType(2))
    );

    // An IPv6 entry whose size covers only IPv4 addresses.
    let mut short6 = [0u8; 72];
    short6[..36].copy_from_slice(&DR_CONN);
    short6[0] = 1;
    assert_eq!(
        decode(&message_of(&[&short6])).unwrap().error,
        Some(DecodeError::EntryTooShort)
    );

    // More entries announced than there are.
    let mut m = message_of(&[&DR_CONN]);
    m[4] = 2;
    let d = decode(&m).unwrap();
    assert_eq!((d.conns.len(), d.error), (1, Some(DecodeError::TooSmall)));

    // An option of length 0, or running past the entry.
    for option in [[9u8 | OPT_F_PARAM, 0, 0, 0], [1, 30, 0, 0]] {
        let mut e = DR_CONN.to_vec();
        e.extend_from_slice(&option);
        e[3] = 40;
        assert_eq!(
            decode(&message_of(&[&e])).unwrap().error,
            Some(DecodeError::BadOption)
        );
    }
}

#[test]
fn unknown_options() {
    // Optional (IPVS_OPT_F_PARAM set): ignored. Mandatory: the entry is skipped, the next
    // one read.
    let with = |kind: u8| {
        let mut e = DR_CONN.to_vec();
        e.extend_from_slice(&[kind, 2, 0xaa, 0xbb]);
        e[3] = 40;
        e
    };
    let optional = with(9 | OPT_F_PARAM);
    let mandatory = with(9);
    let d = decode(&message_of(&[&optional, &mandatory, &DR_CONN])).unwrap();
    assert_eq!(d.conns, vec![dr_conn(), dr_conn()]);
    assert_eq!((d.skipped, d.error), (1, None));
}

#[test]
fn syncid_filter() {
    assert!(syncid_matches(0, 200));
    assert!(syncid_matches(5, 5));
    assert!(!syncid_matches(5, 6));
}
