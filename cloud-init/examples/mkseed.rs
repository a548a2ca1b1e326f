//! Writes a NoCloud seed from files: `mkseed [--vfat] OUT USER-DATA META-DATA [NETWORK-CONFIG]`.
//! A thin front end for the benchmark (scripts/bench/seed.sh) and for looking at our output
//! with the reference tools; `ecs-build config seed` is the operator's command.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let vfat = args.first().is_some_and(|a| a == "--vfat");
    if vfat {
        args.remove(0);
    }
    if !(3..=4).contains(&args.len()) {
        eprintln!("usage: mkseed [--vfat] OUT USER-DATA META-DATA [NETWORK-CONFIG]");
        return ExitCode::from(2);
    }
    let read = |path: &String| std::fs::read(path).map_err(|e| format!("reading {path}: {e}"));
    let run = || -> Result<(), String> {
        let files = cloud_init::SeedFiles {
            user_data: read(&args[1])?,
            meta_data: read(&args[2])?,
            network_config: args.get(3).map(read).transpose()?,
        };
        let timestamp = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v
                .parse()
                .map_err(|e| format!("reading SOURCE_DATE_EPOCH={v:?}: {e}"))?,
            Err(_) => 0,
        };
        let image = if vfat {
            cloud_init::fat_image(&files, timestamp, 0x6369_6461)
        } else {
            cloud_init::iso_image(&files, timestamp)
        }
        .map_err(|e| format!("making the seed: {e}"))?;
        host_util::write_atomic(std::path::Path::new(&args[0]), &image, 0o600)
            .map_err(|e| format!("writing {}: {e}", args[0]))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
