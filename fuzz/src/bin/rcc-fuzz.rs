//! The AFL++ harness: `rcc-fuzz TARGET` runs one target of [`rcc_fuzz::TARGETS`] in
//! AFL's persistent mode. Built and run by `scripts/fuzz.sh`; see `docs/reliability.md`.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = rcc_fuzz::target(&name) else {
        eprintln!(
            "usage: rcc-fuzz TARGET, with TARGET one of: {}",
            rcc_fuzz::names().join(", ")
        );
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
