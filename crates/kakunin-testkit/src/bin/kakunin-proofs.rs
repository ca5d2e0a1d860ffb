//! `kakunin-proofs AGENT AUD COUNT [IAT_OFFSET [JTI_PREFIX]]`: prints COUNT
//! fresh proofs of possession for fixture AGENT and audience AUD, issued
//! IAT_OFFSET seconds from now (default 0), with jti `<JTI_PREFIX>-<n>`
//! (default `bench`), one `<n>\t<jws>` line each (COPY text format), for the
//! proof-path benchmark and the shared-memory tests.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (agent, aud, count, rest) = match args.as_slice() {
        [agent, aud, count, rest @ ..] if rest.len() <= 2 => (agent, aud, count, rest),
        _ => {
            eprintln!("usage: kakunin-proofs AGENT AUD COUNT [IAT_OFFSET [JTI_PREFIX]]");
            std::process::exit(2);
        }
    };
    let count: u32 = count.parse().unwrap_or(0);
    let offset: i64 = rest.first().and_then(|o| o.parse().ok()).unwrap_or(0);
    let prefix = rest.get(1).map_or("bench", String::as_str);
    for n in 1..=count {
        let jws = kakunin_testkit::proof(agent, aud, &format!("{prefix}-{n}"), offset);
        println!("{n}\t{jws}");
    }
}
