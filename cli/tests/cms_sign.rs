//! `ukey sign --cms` / `ukey verify --cms`: GM/T 0010 SignedData with SM2, RFC 5652 with EC and
//! RSA, the GmSSL interop vector, and OpenSSL 3 cross-checks in both directions.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::{Path, PathBuf};

use common::{Env, PIN, gm, openssl};

fn w(e: &Env) -> PathBuf {
    e.dir.path().join("work")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const BID: &[u8] = "Tender 2026-118, Bidder One: price 1,234,567.00 CNY. 投标文件\n".as_bytes();

/// Token `t`, container `c` with an SM2 signing key and its self-signed certificate, which
/// serves as its own CA (`c.pem`).
fn sm2_env() -> Env {
    let e = Env::new();
    e.sm2_container();
    e.ok(&["cert", "export", "--container", "c", "-o", "c.pem"]);
    e.write("bid.txt", BID);
    e
}

#[test]
fn sm2_attached_round_trip_prints_the_signer() {
    let e = sm2_env();
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "bid.p7s",
    ]);
    let out = e.ok(&[
        "verify", "--cms", "--ca", "c.pem", "bid.p7s", "-o", "back.txt",
    ]);
    assert!(out.contains("Signature OK (GM/T 0010"), "{out}");
    assert!(out.contains("Signer:") && out.contains("CN=c"), "{out}");
    assert!(out.contains("Chain:     verified to"), "{out}");
    assert_eq!(e.read("back.txt"), BID);
    let j = e.json(&["verify", "--cms", "--ca", "c.pem", "bid.p7s"]);
    assert_eq!(j["valid"], true);
    assert_eq!(j["gm_oids"], true);
    assert_eq!(j["signers"][0]["profile"], "GM/T 0010");
    assert_eq!(j["signers"][0]["algorithm"], "SM2-with-SM3");
    let cert = e.json(&["cert", "show", "c.pem"]);
    assert_eq!(j["signers"][0]["serial"], cert["serial"]);
    // The GM/T 0010 OIDs are in the DER.
    let der = e.read("bid.p7s");
    let asn1 = openssl(&w(&e), &["asn1parse", "-inform", "DER", "-in", "bid.p7s"]);
    assert!(asn1.contains("1.2.156.10197.6.1.4.2.2"), "{asn1}");
    assert!(asn1.contains("1.2.156.10197.6.1.4.2.1"), "{asn1}");
    assert!(
        asn1.contains(":sm3") && asn1.contains("SM2-with-SM3"),
        "{asn1}"
    );
    assert!(der.windows(BID.len()).any(|x| x == BID));
    // Without --ca the signature is still checked, and the output says the chain was not.
    let out = e.ok(&["verify", "--cms", "bid.p7s"]);
    assert!(out.contains("not checked"), "{out}");
}

#[test]
fn sm2_detached_and_pem() {
    let e = sm2_env();
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--detached",
        "--pem",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "bid.p7s.pem",
    ]);
    let pem = String::from_utf8(e.read("bid.p7s.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CMS-----"), "{pem}");
    assert!(!e.read("bid.p7s.pem").windows(6).any(|x| x == b"Tender"));
    let out = e.ok(&[
        "verify",
        "--cms",
        "--ca",
        "c.pem",
        "--content",
        "bid.txt",
        "bid.p7s.pem",
    ]);
    assert!(out.contains("Signature OK"), "{out}");
    // Other content fails; no content at all says what is missing.
    e.write(
        "other.txt",
        b"Tender 2026-118, Bidder One: price 9,234,567.00 CNY.\n",
    );
    let err = e.fail(&["verify", "--cms", "--content", "other.txt", "bid.p7s.pem"]);
    assert!(err.contains("does not verify"), "{err}");
    let err = e.fail(&["verify", "--cms", "bid.p7s.pem"]);
    assert!(err.contains("detached"), "{err}");
}

#[test]
fn gm_interop_vector_verifies_against_its_ca() {
    let e = Env::new();
    let out = e.ok(&[
        "verify",
        "--cms",
        "--ca",
        s(&gm("ca.cert.pem")),
        "--at",
        "2027-01-15T00:00:00Z",
        s(&gm("bid.signed.p7.pem")),
        "-o",
        "bid.txt",
    ]);
    assert!(out.contains("CN=Bidder One,O=Bidder One Co,C=CN"), "{out}");
    assert!(out.contains("0F961F7CA606D8DC59648CE1"), "{out}");
    assert!(out.contains("CN=Example Tendering CA"), "{out}");
    assert_eq!(e.read("bid.txt"), std::fs::read(gm("bid.txt")).unwrap());
    // Today (inside its validity, 2026-11-25 .. 2027-11-25) without --at as well.
    let j = e.json(&[
        "verify",
        "--cms",
        "--ca",
        s(&gm("ca.cert.pem")),
        s(&gm("bid.signed.p7.pem")),
    ]);
    assert_eq!(j["signers"][0]["serial"], "0F961F7CA606D8DC59648CE1");
}

#[test]
fn expired_not_yet_valid_and_wrong_ca_are_refused_with_no_output() {
    let e = sm2_env();
    let vector = s(&gm("bid.signed.p7.pem")).to_owned();
    let ca = s(&gm("ca.cert.pem")).to_owned();
    for (at, want) in [
        ("2030-01-01T00:00:00Z", "expired"),
        ("2026-01-01T00:00:00Z", "not valid before"),
    ] {
        let err = e.fail(&[
            "verify", "--cms", "--ca", &ca, "--at", at, &vector, "-o", "out.txt",
        ]);
        assert!(err.contains(want) && err.contains("CN=Bidder One"), "{err}");
        assert!(!e.path("out.txt").exists());
    }
    // The token's self-signed certificate is not the CA of the vector.
    let err = e.fail(&["verify", "--cms", "--ca", "c.pem", &vector, "-o", "out.txt"]);
    assert!(err.contains("does not chain to a trusted CA"), "{err}");
    assert!(!e.path("out.txt").exists());
    let err = e.fail(&["verify", "--cms", "--at", "yesterday", "--ca", &ca, &vector]);
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn tampered_content_and_wrong_content_type_are_refused_with_no_output() {
    let e = sm2_env();
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "bid.p7s",
    ]);
    let der = e.read("bid.p7s");
    let pos = der.windows(6).position(|x| x == b"Tender").unwrap();
    let mut bad = der.clone();
    bad[pos] = b't';
    e.write("tampered.p7s", &bad);
    let err = e.fail(&["verify", "--cms", "tampered.p7s", "-o", "out.txt"]);
    assert!(
        err.contains("tampered.p7s") && err.contains("does not verify"),
        "{err}"
    );
    assert!(!e.path("out.txt").exists());

    // eContentType 1.2.156.10197.6.1.4.2.1 (data) -> ...2.3 (envelopedData).
    let data_oid = [
        0x06, 0x0A, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x06, 0x01, 0x04, 0x02, 0x01,
    ];
    let pos = der
        .windows(data_oid.len())
        .position(|x| x == data_oid)
        .unwrap();
    let mut bad = der.clone();
    bad[pos + data_oid.len() - 1] = 0x03;
    e.write("wrongtype.p7s", &bad);
    let err = e.fail(&["verify", "--cms", "wrongtype.p7s", "-o", "out.txt"]);
    assert!(err.contains("is not data"), "{err}");
    assert!(!e.path("out.txt").exists());

    e.write("garbage.p7s", b"not a signature");
    let err = e.fail(&["verify", "--cms", "garbage.p7s"]);
    assert!(
        err.contains("garbage.p7s") && err.contains("ContentInfo"),
        "{err}"
    );
    let err = e.fail(&["verify", "--cms", "bid.p7s", "bid.txt"]);
    assert!(err.contains("only the signature file"), "{err}");
}

#[test]
fn sign_needs_a_certificate_and_leaves_no_output() {
    let e = Env::new();
    e.token("t");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "gen",
        "--alg",
        "sm2",
        "--container",
        "c",
        "--no-cert",
    ]);
    e.write("bid.txt", BID);
    let err = e.fail(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "bid.p7s",
    ]);
    assert!(err.contains("no signing certificate"), "{err}");
    assert!(!e.path("bid.p7s").exists());
    // The raw signature still works on the same key (unchanged behaviour).
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "bid.sig",
    ]);
    e.ok(&["key", "pub", "--container", "c", "-o", "pub.pem"]);
    e.ok(&["verify", "--pub", "pub.pem", "bid.txt", "bid.sig"]);
}

/// An OpenSSL CA and a key with a certificate it issued (`days` may be negative), imported
/// into container `c` of token `t`. Files: ca.pem, user.key, user.pem.
fn openssl_issued(e: &Env, genpkey: &[&str], days: &str) {
    let d = w(e);
    openssl(
        &d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=Test Tendering CA",
            "-days",
            "30",
        ],
    );
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", "user.key"]);
    openssl(&d, &args);
    openssl(
        &d,
        &[
            "req",
            "-new",
            "-key",
            "user.key",
            "-subj",
            "/CN=Bidder Two",
            "-out",
            "user.csr",
        ],
    );
    e.write(
        "ext.cnf",
        b"keyUsage=critical,digitalSignature,nonRepudiation\n",
    );
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "user.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            days,
            "-extfile",
            "ext.cnf",
            "-out",
            "user.pem",
        ],
    );
    e.token("t");
    e.ok(&[
        "--pin",
        PIN,
        "key",
        "import",
        "--container",
        "c",
        "user.key",
    ]);
    e.ok(&[
        "--pin",
        PIN,
        "cert",
        "import",
        "--container",
        "c",
        "user.pem",
    ]);
}

fn cross_check(genpkey: &[&str], want_alg: &str) {
    let e = Env::new();
    openssl_issued(&e, genpkey, "30");
    e.write("bid.txt", BID);
    let d = w(&e);

    // ukey signs, OpenSSL verifies (attached, then detached).
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "u.p7s",
    ]);
    openssl(
        &d,
        &[
            "cms", "-verify", "-inform", "DER", "-in", "u.p7s", "-CAfile", "ca.pem", "-binary",
            "-out", "o.txt",
        ],
    );
    assert_eq!(e.read("o.txt"), BID);
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--detached",
        "--pem",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "ud.pem",
    ]);
    openssl(
        &d,
        &[
            "cms",
            "-verify",
            "-inform",
            "PEM",
            "-in",
            "ud.pem",
            "-content",
            "bid.txt",
            "-CAfile",
            "ca.pem",
            "-binary",
            "-out",
            "/dev/null",
        ],
    );

    // OpenSSL signs, ukey verifies (attached, detached, and without signed attributes).
    openssl(
        &d,
        &[
            "cms",
            "-sign",
            "-in",
            "bid.txt",
            "-signer",
            "user.pem",
            "-inkey",
            "user.key",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-out",
            "o.p7s",
        ],
    );
    let j = e.json(&[
        "verify", "--cms", "--ca", "ca.pem", "o.p7s", "-o", "back.txt",
    ]);
    assert_eq!(j["gm_oids"], false);
    assert_eq!(j["signers"][0]["algorithm"], want_alg);
    assert_eq!(j["signers"][0]["subject"], "CN=Bidder Two");
    assert_eq!(j["signers"][0]["chain_to"], "CN=Test Tendering CA");
    assert_eq!(e.read("back.txt"), BID);
    openssl(
        &d,
        &[
            "cms", "-sign", "-in", "bid.txt", "-signer", "user.pem", "-inkey", "user.key",
            "-binary", "-outform", "PEM", "-out", "od.pem",
        ],
    );
    e.ok(&[
        "verify",
        "--cms",
        "--ca",
        "ca.pem",
        "--content",
        "bid.txt",
        "od.pem",
    ]);
    openssl(
        &d,
        &[
            "cms",
            "-sign",
            "-in",
            "bid.txt",
            "-signer",
            "user.pem",
            "-inkey",
            "user.key",
            "-binary",
            "-nodetach",
            "-noattr",
            "-outform",
            "DER",
            "-out",
            "on.p7s",
        ],
    );
    e.ok(&["verify", "--cms", "--ca", "ca.pem", "on.p7s"]);
    // BER indefinite length (-stream) is refused with the way out, which then works.
    openssl(
        &d,
        &[
            "cms",
            "-sign",
            "-in",
            "bid.txt",
            "-signer",
            "user.pem",
            "-inkey",
            "user.key",
            "-binary",
            "-nodetach",
            "-stream",
            "-outform",
            "DER",
            "-out",
            "os.p7s",
        ],
    );
    let err = e.fail(&["verify", "--cms", "--ca", "ca.pem", "os.p7s"]);
    assert!(
        err.contains("indefinite-length") && err.contains("-cmsout"),
        "{err}"
    );
    openssl(
        &d,
        &[
            "cms", "-cmsout", "-inform", "DER", "-in", "os.p7s", "-outform", "DER", "-out",
            "os.der",
        ],
    );
    e.ok(&["verify", "--cms", "--ca", "ca.pem", "os.der"]);
    // A tampered OpenSSL message fails in ukey.
    let mut bad = e.read("o.p7s");
    let pos = bad.windows(6).position(|x| x == b"Tender").unwrap();
    bad[pos] = b'X';
    e.write("bad.p7s", &bad);
    let err = e.fail(&["verify", "--cms", "bad.p7s"]);
    assert!(err.contains("does not verify"), "{err}");
}

#[test]
fn ec_p256_cms_cross_checks_with_openssl() {
    cross_check(
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "ECDSA",
    );
}

#[test]
fn rsa_cms_cross_checks_with_openssl() {
    cross_check(
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "RSA PKCS#1 v1.5",
    );
}

#[test]
fn expired_certificate_is_refused_at_verification() {
    let e = Env::new();
    openssl_issued(
        &e,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "-1",
    );
    e.write("bid.txt", BID);
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "u.p7s",
    ]);
    let err = e.fail(&["verify", "--cms", "--ca", "ca.pem", "u.p7s"]);
    assert!(err.contains("CN=Bidder Two expired on"), "{err}");
}

/// Debian's OpenSSL 3.0 `cms` cannot make SM2 SignedData, and does not know the GM/T 0010
/// content types, so it cannot check ukey's SM2 output either. This records that; if a
/// newer OpenSSL learns either, the test says so and should become a cross-check.
#[test]
fn openssl_3_0_cms_has_no_gm_signed_data() {
    let e = sm2_env();
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "bid.p7s",
    ]);
    let o = std::process::Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "bid.p7s",
            "-CAfile",
            "c.pem",
            "-binary",
            "-out",
            "/dev/null",
        ])
        .current_dir(w(&e))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("unsupported content type"),
        "OpenSSL now reads GM/T 0010 SignedData; turn this into a cross-check: {stderr}"
    );
}

/// Root CA -> intermediate CA -> signer: the chain is followed through the intermediate
/// carried in the message (`openssl cms -sign -certfile`) or given in the CA file, and is
/// refused when the intermediate is nowhere.
#[test]
fn chain_through_an_intermediate_ca() {
    let e = Env::new();
    let d = w(&e);
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut root = vec!["req", "-x509"];
    root.extend_from_slice(&ec);
    root.extend_from_slice(&[
        "-keyout",
        "root.key",
        "-out",
        "root.pem",
        "-subj",
        "/CN=Root CA",
        "-days",
        "30",
    ]);
    openssl(&d, &root);
    let mut inter = vec!["req", "-new"];
    inter.extend_from_slice(&ec);
    inter.extend_from_slice(&[
        "-keyout",
        "inter.key",
        "-out",
        "inter.csr",
        "-subj",
        "/CN=Sub CA",
    ]);
    openssl(&d, &inter);
    e.write(
        "ca.cnf",
        b"basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    );
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ca.cnf",
            "-out",
            "inter.pem",
        ],
    );
    let mut leaf = vec!["req", "-new"];
    leaf.extend_from_slice(&ec);
    leaf.extend_from_slice(&[
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=Signer",
    ]);
    openssl(&d, &leaf);
    e.write("leaf.cnf", b"keyUsage=critical,digitalSignature\n");
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "leaf.cnf",
            "-out",
            "leaf.pem",
        ],
    );
    e.write("bid.txt", BID);
    for (out, extra) in [("with.p7s", true), ("without.p7s", false)] {
        let mut args = vec![
            "cms",
            "-sign",
            "-in",
            "bid.txt",
            "-signer",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-out",
            out,
        ];
        if extra {
            args.extend_from_slice(&["-certfile", "inter.pem"]);
        }
        openssl(&d, &args);
    }
    let j = e.json(&["verify", "--cms", "--ca", "root.pem", "with.p7s"]);
    assert_eq!(j["signers"][0]["chain_to"], "CN=Root CA");
    let err = e.fail(&["verify", "--cms", "--ca", "root.pem", "without.p7s"]);
    assert!(err.contains("does not chain"), "{err}");
    let bundle = [e.read("root.pem"), e.read("inter.pem")].concat();
    e.write("bundle.pem", &bundle);
    let j = e.json(&["verify", "--cms", "--ca", "bundle.pem", "without.p7s"]);
    assert_eq!(j["signers"][0]["chain_to"], "CN=Sub CA");

    // A root limited to pathlen 0 may not have the intermediate under it.
    let mut strict = vec!["req", "-x509", "-key", "root.key"];
    strict.extend_from_slice(&[
        "-out",
        "strict.pem",
        "-subj",
        "/CN=Root CA",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
    ]);
    openssl(&d, &strict);
    let err = e.fail(&["verify", "--cms", "--ca", "strict.pem", "with.p7s"]);
    assert!(err.contains("does not chain"), "{err}");
}

/// A signer certificate "issued" by another end-entity certificate (not a CA) is refused,
/// even though that certificate chains to the trusted root and is carried in the message.
#[test]
fn end_entity_certificates_cannot_issue() {
    let e = Env::new();
    openssl_issued(
        &e,
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "30",
    );
    let d = w(&e);
    openssl(
        &d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "evil.key",
            "-out",
            "evil.csr",
            "-subj",
            "/CN=Bidder Two",
        ],
    );
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-in",
            "evil.csr",
            "-CA",
            "user.pem",
            "-CAkey",
            "user.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-out",
            "evil.pem",
        ],
    );
    e.write("bid.txt", BID);
    openssl(
        &d,
        &[
            "cms",
            "-sign",
            "-in",
            "bid.txt",
            "-signer",
            "evil.pem",
            "-inkey",
            "evil.key",
            "-certfile",
            "user.pem",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-out",
            "evil.p7s",
        ],
    );
    // The signature itself is fine; the chain is not.
    e.ok(&["verify", "--cms", "evil.p7s"]);
    let err = e.fail(&["verify", "--cms", "--ca", "ca.pem", "evil.p7s"]);
    assert!(err.contains("does not chain to a trusted CA"), "{err}");
    // The genuine signer still verifies.
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "good.p7s",
    ]);
    e.ok(&["verify", "--cms", "--ca", "ca.pem", "good.p7s"]);
}

/// `--gmssl` writes GmSSL 3's profile (no signed attributes, e = SM3(DER(encapContentInfo)),
/// no Z). OpenSSL checks that signature independently as a raw SM2 signature over e.
#[test]
fn gmssl_profile_checked_by_openssl_pkeyutl() {
    let e = sm2_env();
    e.ok(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--gmssl",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "g.p7s",
    ]);
    let j = e.json(&["verify", "--cms", "--ca", "c.pem", "g.p7s"]);
    assert_eq!(j["signers"][0]["profile"], "GmSSL 3, no Z");
    let der = e.read("g.p7s");
    // encapContentInfo: SEQUENCE { OID 1.2.156.10197.6.1.4.2.1, [0] { OCTET STRING bid } }.
    let data_oid = [
        0x06, 0x0A, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x06, 0x01, 0x04, 0x02, 0x01,
    ];
    let oid_at = der
        .windows(data_oid.len())
        .position(|x| x == data_oid)
        .unwrap();
    let eci_at = oid_at - 2;
    assert_eq!(der[eci_at], 0x30);
    let eci = &der[eci_at..eci_at + 2 + usize::from(der[eci_at + 1])];
    assert!(eci.ends_with(BID));
    e.write("eci.der", eci);
    // The signature is the last OCTET STRING of the message.
    let sig_len = (68..=72)
        .find(|&n| der[der.len() - n - 2] == 0x04 && usize::from(der[der.len() - n - 1]) == n)
        .unwrap();
    e.write("sig.der", &der[der.len() - sig_len..]);
    e.ok(&["key", "pub", "--container", "c", "-o", "pub.pem"]);
    let d = w(&e);
    openssl(&d, &["dgst", "-sm3", "-binary", "-out", "e.bin", "eci.der"]);
    let out = openssl(
        &d,
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-in", "e.bin", "-sigfile",
            "sig.der",
        ],
    );
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    let err = e.fail(&[
        "--pin",
        PIN,
        "sign",
        "--cms",
        "--gmssl",
        "--detached",
        "--container",
        "c",
        "bid.txt",
        "-o",
        "x.p7s",
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
}
