//! `kakunin-proof AGENT AUD JTI [IAT_OFFSET]`: prints a proof-of-possession JWS
//! signed with fixture AGENT's key, for the pgTAP fixture loader.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [agent, aud, jti, rest @ ..] = args.as_slice() else {
        eprintln!("usage: kakunin-proof AGENT AUD JTI [IAT_OFFSET]");
        std::process::exit(2);
    };
    let offset = rest.first().and_then(|o| o.parse().ok()).unwrap_or(0);
    println!("{}", kakunin_testkit::proof(agent, aud, jti, offset));
}
