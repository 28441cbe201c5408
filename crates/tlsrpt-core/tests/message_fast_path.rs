//! The strict report-message parser against the full MIME parser (`tlsrpt_core::message`).
//!
//! `extract_report` takes messages in the plain RFC 8460 §5.3 shape through a strict parser
//! and everything else through mail-parser. Its result must not depend on which path was
//! taken, so for every input here: either the strict path declines, or it gives exactly (same
//! report, deviations and error text) what the full parser's path gives. Some inputs must be
//! accepted, so that the comparison is not vacuous.

use std::path::{Path, PathBuf};

use tlsrpt_core::message::{extract_report, extract_report_fast, extract_report_slow};
use tlsrpt_core::read::Limits;

/// The whole result as text: the report with its deviations, or the error and its details.
fn render(
    r: &Result<tlsrpt_core::message::MessageReport, tlsrpt_core::message::MessageError>,
) -> String {
    match r {
        Ok(m) => format!("OK {m:?}"),
        Err(e) => format!("ERR {e} {e:?}"),
    }
}

/// Checks one input; returns whether the strict path took it.
fn check(name: &str, bytes: &[u8], limits: &Limits) -> bool {
    let slow = render(&extract_report_slow(bytes, limits));
    let whole = render(&extract_report(bytes, limits));
    assert_eq!(
        whole, slow,
        "{name}: extract_report differs from the full parser"
    );
    match extract_report_fast(bytes, limits) {
        Some(fast) => {
            assert_eq!(render(&fast), slow, "{name}: strict path differs");
            true
        }
        None => false,
    }
}

fn emls(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            emls(&p, out);
        } else if p.extension().is_some_and(|x| x == "eml") {
            out.push(p);
        }
    }
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 20);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

fn standard() -> String {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/message/standard_gzip.eml");
    // Stored with CRLF; the variants below are written with LF and also tried as CRLF.
    String::from_utf8(std::fs::read(p).expect("standard_gzip.eml"))
        .expect("ASCII")
        .replace("\r\n", "\n")
}

#[test]
fn every_eml_file_agrees() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    emls(&root.join("tests"), &mut files);
    emls(&root.join("../../../shared/testdata"), &mut files);
    files.sort();
    assert!(files.len() >= 20, "found only {} .eml files", files.len());
    let small = Limits {
        max_input_bytes: 700,
        ..Limits::default()
    };
    let mut taken = 0;
    for f in &files {
        let bytes = std::fs::read(f).expect("readable");
        let name = f.display().to_string();
        taken += usize::from(check(&name, &bytes, &Limits::default()));
        check(&format!("{name} (700-byte limit)"), &bytes, &small);
        taken += usize::from(check(
            &format!("{name} (CRLF)"),
            &crlf(&bytes),
            &Limits::default(),
        ));
    }
    eprintln!(
        "strict path took {taken} of {} files (plain and CRLF)",
        2 * files.len()
    );
    assert!(taken >= 10, "strict path took only {taken} files");
}

#[test]
fn standard_messages_take_the_strict_path() {
    let std_msg = standard();
    assert!(check("standard", std_msg.as_bytes(), &Limits::default()));
    assert!(check(
        "standard CRLF",
        &crlf(std_msg.as_bytes()),
        &Limits::default()
    ));
    // RFC 8460 §5.3's own example, with Content-Language and an unquoted report-type.
    let rfc = std_msg.replace(
        "MIME-Version: 1.0\n",
        "MIME-Version: 1.0\nContent-Language: en-us\nReceived: from a.example (a.example [192.0.2.1])\n by b.example with ESMTPS id 1;\n Fri, 14 Mar 2025 01:00:00 +0000\n",
    );
    assert!(check("rfc example", rfc.as_bytes(), &Limits::default()));
}

/// Variants of the standard message that stress what the strict parser must get right or
/// decline: folding, CRLF, duplicates, encoded words, RFC 2231, odd base64, stray
/// boundaries, nesting, missing parts, Date zones.
#[test]
fn crafted_variants_agree() {
    let s = standard();
    let b64_start = s.find("H4sI").expect("base64 body");
    let b64_end = s[..s.rfind("--B--").expect("close")].trim_end().len();
    let b64 = &s[b64_start..b64_end];
    let with_b64 = |new: &str| format!("{}{}{}", &s[..b64_start], new, &s[b64_end..]);
    let subject = "Subject: Report Domain: recipient.example Submitter: sender.example Report-ID: <r1@sender.example>\n";
    let ct_root = "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"B\"\n";
    let ct_part = "Content-Type: application/tlsrpt+gzip\n";
    let cd = "Content-Disposition: attachment; filename=\"sender.example!recipient.example!1741910400!1741996799.json.gz\"\n";
    let text_part = "--B\nContent-Type: text/plain\n\nA TLS report.\n\n";
    let date = "Date: Fri, 14 Mar 2025 01:00:00 +0000\n";
    let mut v: Vec<(String, String)> = Vec::new();
    let unchanged = s.clone();
    let mut add = |name: &str, msg: String| {
        // A replacement that matched nothing would test nothing.
        assert!(
            matches!(name, "standard" | "date +0000") || msg != unchanged,
            "{name}: variant equals the original"
        );
        v.push((name.to_owned(), msg));
    };

    add("standard", s.clone());
    // Folding (RFC 5322 §2.2.3).
    add("subject folded", s.replace(subject, "Subject: Report Domain: recipient.example\n  Submitter: sender.example\n\tReport-ID: <r1@sender.example>\n"));
    add("subject blank continuation", s.replace(subject, "Subject: Report Domain: recipient.example Submitter: sender.example\n \n Report-ID: <r1@sender.example>  \n"));
    add("subject empty", s.replace(subject, "Subject:   \n"));
    add("subject missing", s.replace(subject, ""));
    add(
        "ct folded after ;",
        s.replace(
            ct_root,
            "Content-Type: multipart/report;\n report-type=tlsrpt;\n\tboundary=\"B\"\n",
        ),
    );
    add(
        "ct folded before ;",
        s.replace(
            ct_root,
            "Content-Type: multipart/report\n ; report-type=tlsrpt; boundary=\"B\"\n",
        ),
    );
    add(
        "ct folded before type",
        s.replace(
            ct_root,
            "Content-Type:\n multipart/report; report-type=tlsrpt; boundary=\"B\"\n",
        ),
    );
    add(
        "ct folded in quotes",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"B\n \"\n",
        ),
    );
    add(
        "ct folded at =",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=\n tlsrpt; boundary=\"B\"\n",
        ),
    );
    add(
        "ct missing ;",
        s.replace(
            ct_root,
            "Content-Type: multipart/report report-type=tlsrpt; boundary=\"B\"\n",
        ),
    );
    add(
        "ct trailing ;",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=tlsrpt; boundary=\"B\";\n",
        ),
    );
    add(
        "ct upper case",
        s.replace(
            ct_root,
            "Content-Type: Multipart/REPORT; Report-Type=TLSRPT; BOUNDARY=\"B\"\n",
        ),
    );
    add(
        "ct spaces around =",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type = tlsrpt; boundary = \"B\"\n",
        ),
    );
    add(
        "ct comment",
        s.replace(
            ct_root,
            "Content-Type: multipart/report (r); report-type=tlsrpt; boundary=\"B\"\n",
        ),
    );
    add(
        "ct quoted report-type",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"B\"\n",
        ),
    );
    add(
        "ct other report-type",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=\"x\"; boundary=\"B\"\n",
        ),
    );
    add(
        "ct no report-type",
        s.replace(ct_root, "Content-Type: multipart/report; boundary=\"B\"\n"),
    );
    add(
        "ct mixed",
        s.replace(ct_root, "Content-Type: multipart/mixed; boundary=\"B\"\n"),
    );
    add(
        "ct digest",
        s.replace(ct_root, "Content-Type: multipart/digest; boundary=\"B\"\n"),
    );
    add(
        "ct empty param",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=\"\"; boundary=\"B\"\n",
        ),
    );
    add(
        "ct two boundaries",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; boundary=\"B\"; boundary=\"C\"\n",
        ),
    );
    add(
        "ct escaped quote",
        s.replace(
            ct_root,
            "Content-Type: multipart/report; report-type=\"tls\\\"rpt\"; boundary=\"B\"\n",
        ),
    );
    add("ct many params", s.replace(ct_root, "Content-Type: multipart/report; a=1; b=2; c=3; d=4; e=5; report-type=tlsrpt; boundary=\"B\"\n"));
    add(
        "ct bare CR",
        s.replace(
            ct_root,
            "Content-Type: multipart/report;\r report-type=tlsrpt; boundary=\"B\"\n",
        ),
    );
    // Duplicates: mail-parser reads the last of a field.
    add(
        "dup subject",
        s.replace(subject, &format!("Subject: other\n{subject}")),
    );
    add(
        "dup ct",
        s.replace(ct_root, &format!("Content-Type: text/plain\n{ct_root}")),
    );
    add(
        "dup report domain",
        s.replace(
            "TLS-Report-Domain: recipient.example\n",
            "TLS-Report-Domain: a.example\nTLS-Report-Domain: recipient.example\n",
        ),
    );
    add(
        "report domain case",
        s.replace("TLS-Report-Domain:", "tls-report-DOMAIN:"),
    );
    add(
        "dup part ct",
        s.replace(
            ct_part,
            &format!("Content-Type: application/octet-stream\n{ct_part}"),
        ),
    );
    add(
        "dup cte",
        s.replace(
            "Content-Transfer-Encoding: base64\n",
            "Content-Transfer-Encoding: 7bit\nContent-Transfer-Encoding: base64\n",
        ),
    );
    // Encoded words (RFC 2047).
    add("encoded subject", s.replace(subject, "Subject: =?utf-8?q?Report_Domain=3A_recipient.example?= Submitter: sender.example Report-ID: <r1@sender.example>\n"));
    add(
        "encoded filename",
        s.replace(
            cd,
            "Content-Disposition: attachment; filename=\"=?utf-8?b?eC5qc29uLmd6?=\"\n",
        ),
    );
    add(
        "encoded from",
        s.replace(
            "From: tlsrpt@sender.example\n",
            "From: =?utf-8?q?T?= <tlsrpt@sender.example>\n",
        ),
    );
    // RFC 2231 parameters.
    add("rfc2231 filename", s.replace(cd, "Content-Disposition: attachment; filename*=utf-8''sender.example%21recipient.example%211741910400%211741996799.json.gz\n"));
    add("rfc2231 continuation", s.replace(cd, "Content-Disposition: attachment; filename*0=\"sender.example!recipient.example!\"; filename*1=\"1741910400!1741996799.json.gz\"\n"));
    add(
        "no disposition, name",
        s.replace(cd, "").replace(
            ct_part,
            "Content-Type: application/tlsrpt+gzip; name=\"r.json.gz\"\n",
        ),
    );
    add(
        "disposition without filename",
        s.replace(cd, "Content-Disposition: attachment\n"),
    );
    add(
        "disposition filename unquoted",
        s.replace(cd, "Content-Disposition: attachment; filename=r.json.gz\n"),
    );
    add(
        "filename with spaces",
        s.replace(
            cd,
            "Content-Disposition: attachment; filename=\" a b.json.gz \"\n",
        ),
    );
    add(
        "filename non-ascii",
        s.replace(
            cd,
            "Content-Disposition: attachment; filename=\"r\u{e9}.json.gz\"\n",
        ),
    );
    // Transfer encodings.
    add(
        "cte upper",
        s.replace(
            "Content-Transfer-Encoding: base64\n",
            "Content-Transfer-Encoding: BASE64 \n",
        ),
    );
    add(
        "cte folded",
        s.replace(
            "Content-Transfer-Encoding: base64\n",
            "Content-Transfer-Encoding:\n base64\n",
        ),
    );
    add(
        "cte comment",
        s.replace(
            "Content-Transfer-Encoding: base64\n",
            "Content-Transfer-Encoding: base64 (x)\n",
        ),
    );
    add(
        "cte qp",
        s.replace(
            "Content-Transfer-Encoding: base64\n",
            "Content-Transfer-Encoding: quoted-printable\n",
        ),
    );
    add(
        "cte missing",
        s.replace("Content-Transfer-Encoding: base64\n", ""),
    );
    // Odd base64 (RFC 2045 §6.8).
    let flat: String = b64.split('\n').collect();
    add("b64 one line", with_b64(&flat));
    add("b64 no padding", with_b64(flat.trim_end_matches('=')));
    add("b64 extra padding", with_b64(&format!("{flat}==")));
    add(
        "b64 padding inside",
        with_b64(&format!("{}=={}", &flat[..8], &flat[8..])),
    );
    add("b64 spaces", with_b64(&b64.replace('\n', " \n")));
    add("b64 dash", with_b64(&b64.replacen('\n', "\n-", 1)));
    add("b64 junk", with_b64(&b64.replacen('\n', "\n*", 1)));
    add("b64 truncated", with_b64(&flat[..flat.len() - 3]));
    add(
        "b64 trailing bits",
        with_b64(&format!("{}B==", &flat[..flat.len() - 3])),
    );
    add("b64 double", with_b64(&format!("{flat}\n{flat}")));
    add("b64 empty", with_b64(""));
    // Boundaries (RFC 2046 §5.1.1).
    add(
        "boundary in text",
        s.replace("A TLS report.", "A TLS report x--B here."),
    );
    add("boundary prefix line", s.replace("A TLS report.", "--Bx"));
    add("boundary dashes", s.replace("A TLS report.", "---B"));
    add(
        "boundary in preamble",
        s.replace("preamble", "pre --B amble"),
    );
    add(
        "boundary trailing space",
        s.replacen(
            "--B\nContent-Type: text/plain",
            "--B  \nContent-Type: text/plain",
            1,
        ),
    );
    add("no close", s.replace("\n--B--", "\n"));
    add(
        "epilogue",
        format!("{s}epilogue --B\n--B\nContent-Type: application/tlsrpt+gzip\n\n"),
    );
    add(
        "only text part",
        format!(
            "{}--B--\n",
            &s[..s
                .find("--B\nContent-Type: application")
                .expect("report part")]
        ),
    );
    add(
        "no parts",
        s.replace(
            &s[s.find("--B\n").expect("first")..s.find("--B--").expect("close")],
            "",
        ),
    );
    add(
        "part without headers",
        s.replace(text_part, "--B\n\nA TLS report.\n\n"),
    );
    add(
        "part headers without body",
        s.replace(text_part, "--B\nContent-Type: text/plain\n--B\n"),
    );
    add(
        "empty report part",
        with_b64("").replace("Content-Transfer-Encoding: base64\n", ""),
    );
    add("nested multipart", s.replace(text_part, "--B\nContent-Type: multipart/alternative; boundary=\"C\"\n\n--C\nContent-Type: text/plain\n\nx\n--C--\n\n"));
    add(
        "rfc822 part",
        s.replace(
            text_part,
            "--B\nContent-Type: message/rfc822\n\nSubject: x\n\nbody\n\n",
        ),
    );
    add(
        "two reports",
        s.replace(
            "\n--B--",
            &format!("\n--B\n{ct_part}Content-Transfer-Encoding: base64\n\n{b64}\n--B--"),
        ),
    );
    add(
        "octet-stream",
        s.replace(ct_part, "Content-Type: application/octet-stream\n"),
    );
    add(
        "octet-stream unnamed",
        s.replace(ct_part, "Content-Type: application/octet-stream\n")
            .replace(cd, ""),
    );
    add(
        "json type",
        s.replace(ct_part, "Content-Type: application/tlsrpt+json\n"),
    );
    add(
        "text report",
        s.replace(ct_part, "Content-Type: text/plain\n"),
    );
    add(
        "image report",
        s.replace(ct_part, "Content-Type: image/png\n"),
    );
    add("no ct report", s.replace(ct_part, ""));
    add(
        "long boundary",
        s.replace(
            "boundary=\"B\"",
            &format!("boundary=\"{}\"", "B".repeat(71)),
        )
        .replace("--B", &format!("--{}", "B".repeat(71))),
    );
    add(
        "boundary with colon",
        s.replace("boundary=\"B\"", "boundary=\"B:x\"")
            .replace("--B", "--B:x"),
    );
    add(
        "boundary with dashes",
        s.replace("boundary=\"B\"", "boundary=\"--=_B\"")
            .replace("--B", "----=_B"),
    );
    // Date fields: the obsolete zone reading may run into the next field.
    for zone in [
        "+0000",
        "GMT",
        "UT",
        "Z",
        "+0000 (UTC)",
        "-0000 (UTC)",
        "EST",
        "z",
        "",
        "+0000\n (UTC)",
        "UTC",
    ] {
        add(
            &format!("date {zone}"),
            s.replace(date, &format!("Date: Fri, 14 Mar 2025 01:00:00 {zone}\n")),
        );
        add(
            &format!("date {zone} before ct"),
            s.replace(date, "").replace(
                ct_root,
                &format!("Date: Fri, 14 Mar 2025 01:00:00 {zone}\n{ct_root}"),
            ),
        );
    }
    add(
        "date no seconds Z",
        s.replace(date, "")
            .replace(ct_root, &format!("Date: 14 Mar 2025 01:00 Z\n{ct_root}")),
    );
    add(
        "date semicolon",
        s.replace(date, "").replace(
            ct_root,
            &format!("Date: x; 14 Mar 2025 01:00:00 A\n{ct_root}"),
        ),
    );
    // Other fields.
    add(
        "received",
        s.replace(
            "From:",
            "Received: from a (b [192.0.2.1]) by c; Fri, 14 Mar 2025 01:00:00 +0000\nFrom:",
        ),
    );
    add(
        "received folded",
        s.replace(
            "From:",
            "Received: from a\n (b [192.0.2.1])\n by c; Fri, 14 Mar 2025 01:00:00 Z\nFrom:",
        ),
    );
    add(
        "keywords",
        s.replace("From:", "Keywords: a, b\nContent-Language: en-us\nFrom:"),
    );
    add(
        "message-id",
        s.replace("From:", "Message-ID: <a@b>\nIn-Reply-To: <c@d>\nFrom:"),
    );
    add(
        "address group",
        s.replace(
            "From: tlsrpt@sender.example\n",
            "From: \"Sender, Inc\" <tlsrpt@sender.example>, g: a@b;\n",
        ),
    );
    add(
        "mbox from",
        format!("From sender Fri Mar 14 01:00:00 2025\n{s}"),
    );
    add(
        "space before colon",
        s.replace("MIME-Version:", "MIME-Version :"),
    );
    add(
        "header without colon",
        s.replace("MIME-Version: 1.0\n", "MIME-Version 1.0\n"),
    );
    add("no blank line", s.replacen("\n\npreamble", "\npreamble", 1));
    add(
        "8bit subject",
        s.replace("Report-ID: <r1", "Report-ID: <r\u{e9}1"),
    );
    add(
        "latin1 report domain",
        s.replace(
            "TLS-Report-Domain: recipient.example",
            "TLS-Report-Domain: recipient.example\u{e9}",
        ),
    );

    let mut taken = 0;
    for (name, msg) in &v {
        let mut bytes = msg.clone().into_bytes();
        if name == "latin1 report domain" {
            // Not UTF-8: mail-parser's header_raw gives None.
            if let Some(p) = bytes.iter().position(|&b| b == 0xc3) {
                bytes.remove(p);
            }
        }
        taken += usize::from(check(name, &bytes, &Limits::default()));
        taken += usize::from(check(
            &format!("{name} (CRLF)"),
            &crlf(&bytes),
            &Limits::default(),
        ));
    }
    eprintln!("strict path took {taken} of {} variants", 2 * v.len());
    assert!(
        taken >= 60,
        "strict path took only {taken} of {} variants",
        2 * v.len()
    );
}

/// Seeded random edits of report messages: every result the strict path gives must be the
/// full parser's.
#[test]
fn mutations_agree() {
    const TOKENS: &[&[u8]] = &[
        b"--",
        b"--B",
        b"\r\n",
        b"\n",
        b"\n ",
        b" ",
        b"\t",
        b"=?utf-8?b?",
        b"?=",
        b"\"",
        b";",
        b"=",
        b"Content-Type: ",
        b"application/tlsrpt+gzip",
        b"application/octet-stream",
        b"text/plain",
        b"multipart/mixed; boundary=B",
        b"Content-Transfer-Encoding: base64\n",
        b"base64",
        b"quoted-printable",
        b"filename=\"a.json.gz\"",
        b"*=",
        b"\\",
        b"(",
        b")",
        b"Date: 1 Jan 2025 00:00:00 Z\n",
        b"Subject: x\n",
        b"\xff",
        b"==",
        b"Z\n",
        b"H4sI",
    ];
    let mut files = Vec::new();
    emls(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/message"),
        &mut files,
    );
    files.sort();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut taken = 0;
    let mut total = 0;
    for f in &files {
        let src = std::fs::read(f).expect("readable");
        if extract_report_fast(&src, &Limits::default()).is_none() {
            continue;
        }
        for k in 0..300 {
            let mut m = src.clone();
            for _ in 0..1 + next() % 3 {
                let len = m.len();
                let at = (next() as usize) % (len + 1);
                match next() % 5 {
                    0 if at < len => m[at] = next() as u8,
                    1 if at < len => {
                        let n = ((next() % 20) as usize).min(len - at);
                        m.drain(at..at + n);
                    }
                    2 => {
                        let t = TOKENS[(next() as usize) % TOKENS.len()];
                        m.splice(at..at, t.iter().copied());
                    }
                    3 if at < len && m[at].is_ascii_alphabetic() => m[at] ^= 0x20,
                    _ => {
                        let n = ((next() % 120) as usize).min(len - at.min(len));
                        let piece = m[at.min(len)..at.min(len) + n].to_vec();
                        let to = (next() as usize) % (len + 1);
                        m.splice(to..to, piece);
                    }
                }
            }
            total += 1;
            taken += usize::from(check(
                &format!("{} #{k}", f.display()),
                &m,
                &Limits::default(),
            ));
        }
    }
    eprintln!("strict path took {taken} of {total} mutations");
    assert!(
        total > 0 && taken * 10 >= total,
        "strict path took {taken} of {total} mutations"
    );
}
