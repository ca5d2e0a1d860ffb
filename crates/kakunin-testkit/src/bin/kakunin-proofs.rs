//! `kakunin-proofs AGENT AUD COUNT`: prints COUNT fresh proofs of possession for
//! fixture AGENT and database AUD, one `<n>\t<jws>` line each (COPY text
//! format), for the proof-path benchmark.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [agent, aud, count] = args.as_slice() else {
        eprintln!("usage: kakunin-proofs AGENT AUD COUNT");
        std::process::exit(2);
    };
    let count: u32 = count.parse().unwrap_or(0);
    for n in 1..=count {
        let jws = kakunin_testkit::proof(agent, aud, &format!("bench-{n}"), 0);
        println!("{n}\t{jws}");
    }
}
