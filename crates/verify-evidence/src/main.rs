//! `verify-evidence bundle.json`: checks a bundle from `kakunin.export_evidence`
//! offline — the checkpoint's Ed25519 signature, every entry's leaf hash
//! recomputed from its fields, and every inclusion proof against the signed
//! root. Exit 0 with a summary, or 1 with the first failure (2: bad usage).
//! Compare the verifier key it prints with the one you hold out of band.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: verify-evidence BUNDLE.json");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("FAILED: cannot read {path}: {e}");
            return ExitCode::from(1);
        }
    };
    match kakunin_core::audit::verify_evidence_text(&text) {
        Ok(summary) => {
            println!(
                "OK: {} entries are included in the tree of {} entries with root {}, signed by {}",
                summary.entries,
                summary.tree_size,
                hex::encode(summary.root),
                summary.key_name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::from(1)
        }
    }
}
