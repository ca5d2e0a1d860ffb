//! `kakunin-fixtures DATABASE`: prints SQL that creates schema `kakunin_test`
//! with the committed test PKI (`certs`) and freshly signed proofs of
//! possession for DATABASE (`proofs`), for the pgTAP suite. Proofs are valid for
//! five minutes, so the loader runs right before `pg_prove`.

use kakunin_testkit::{alg_for, key_pem, proof, sign_jws, FIXTURES};

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn main() {
    let Some(db) = std::env::args().nth(1) else {
        eprintln!("usage: kakunin-fixtures DATABASE");
        std::process::exit(2);
    };
    println!("DROP SCHEMA IF EXISTS kakunin_test CASCADE;");
    println!("CREATE SCHEMA kakunin_test;");
    println!("CREATE TABLE kakunin_test.certs (name text PRIMARY KEY, pem text NOT NULL);");
    println!("CREATE TABLE kakunin_test.proofs (name text PRIMARY KEY, jws text NOT NULL);");
    println!("GRANT USAGE ON SCHEMA kakunin_test TO PUBLIC;");
    println!("GRANT SELECT ON ALL TABLES IN SCHEMA kakunin_test TO PUBLIC;");
    for (name, pem, _key) in FIXTURES {
        println!(
            "INSERT INTO kakunin_test.certs VALUES ({}, {});",
            quote(name),
            quote(pem)
        );
    }
    for (name, pem) in kakunin_testkit::CRLS {
        println!(
            "INSERT INTO kakunin_test.certs VALUES ({}, {});",
            quote(name),
            quote(pem)
        );
    }
    println!(
        "INSERT INTO kakunin_test.certs VALUES ('agent-a-chain', {});",
        quote(&kakunin_testkit::agent_a_chain())
    );

    let mut proofs: Vec<(String, String)> = Vec::new();
    // Ten single-use proofs per agent: proof name "<agent>/<n>", jti "<agent>-<n>".
    for agent in [
        "agent-a",
        "agent-b",
        "agent-rsa",
        "agent-p384",
        "rogue-agent",
        "expired",
    ] {
        for n in 1..=10 {
            proofs.push((
                format!("{agent}/{n}"),
                proof(agent, &db, &format!("{agent}-{n}"), 0),
            ));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let signed = |agent: &str, alg: &str, claims: serde_json::Value| {
        sign_jws(key_pem(agent), alg, &claims).unwrap_or_else(|e| panic!("{e}"))
    };
    proofs.push(("agent-a/stale".into(), proof("agent-a", &db, "stale", -400)));
    proofs.push((
        "agent-a/future".into(),
        proof("agent-a", &db, "future", 400),
    ));
    proofs.push((
        "agent-a/other-db".into(),
        proof("agent-a", "some_other_db", "odb", 0),
    ));
    proofs.push((
        "agent-a/no-jti".into(),
        signed(
            "agent-a",
            "ES256",
            serde_json::json!({"iat": now, "aud": db}),
        ),
    ));
    proofs.push((
        "agent-rsa/ps256".into(),
        signed(
            "agent-rsa",
            "PS256",
            serde_json::json!({"iat": now, "jti": "ps", "aud": db}),
        ),
    ));
    // agent-b's key signing a proof presented with agent-a's certificate.
    proofs.push((
        "agent-a/signed-by-b".into(),
        signed(
            "agent-b",
            alg_for("agent-b"),
            serde_json::json!({"iat": now, "jti": "sb", "aud": db}),
        ),
    ));
    for (name, jws) in proofs {
        println!(
            "INSERT INTO kakunin_test.proofs VALUES ({}, {});",
            quote(&name),
            quote(&jws)
        );
    }
}
