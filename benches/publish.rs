//! Publish throughput: packing a pack directory into a deterministic archive while
//! hashing it (`pack_dir` into `ArchiveHasher::tee(file)` + fsync), against the shell
//! pipelines a user would compare it with, run alternately in the same run on the same
//! directory: `tar cf - DIR | zstd -3` (the same format, the baseline of issue 11) and
//! `tar cf - DIR | gzip -6` (how `npm pack` and `cargo package` compress), each writing
//! a file; and, as before, plain single-threaded BLAKE3 over the same bytes.
//!
//! The pack is 256 MiB: half compressible text (generated Rust-like source, 512 files
//! of 256 KiB), half incompressible random bytes (32 files of 4 MiB).
//! Run: `cargo bench --bench publish`.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ggen_p2p::package::archive::{pack_dir, pack_dir_at_level, ZSTD_LEVEL};
use ggen_p2p::package::digest::ArchiveHasher;
use rand::{Rng, RngCore, SeedableRng};

const MIB: usize = 1 << 20;
const TEXT_FILES: usize = 512;
const TEXT_FILE_SIZE: usize = 256 * 1024;
const RANDOM_FILES: usize = 32;
const RANDOM_FILE_SIZE: usize = 4 * MIB;
const RUNS: usize = 3;

fn main() -> anyhow::Result<()> {
    let work = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))?;
    let pack = work.path().join("pack");
    let files = generate(&pack)?;
    let input: u64 = files.iter().map(|f| f.1).sum();
    println!(
        "pack: {} files, {:.0} MiB ({} MiB text, {} MiB random), zstd level {ZSTD_LEVEL}",
        files.len(),
        input as f64 / MIB as f64,
        TEXT_FILES * TEXT_FILE_SIZE / MIB,
        RANDOM_FILES * RANDOM_FILE_SIZE / MIB
    );
    // Warm the page cache so both sides read from memory.
    hash_files(&files)?;

    let mut baseline = Vec::new();
    let mut publish = Vec::new();
    let mut tar_zstd = Vec::new();
    let mut tar_gzip = Vec::new();
    let mut archive_size = 0;
    for run in 0..RUNS {
        for (command, times) in [("zstd -3 -q", &mut tar_zstd), ("gzip -6", &mut tar_gzip)] {
            let out = work.path().join("pipeline.out");
            let started = Instant::now();
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "tar cf - -C '{}' . | {command} > '{}'",
                    pack.display(),
                    out.display()
                ))
                .status()?;
            times.push(started.elapsed());
            anyhow::ensure!(status.success(), "tar | {command} failed: {status}");
            fs::remove_file(&out)?;
        }

        let started = Instant::now();
        hash_files(&files)?;
        baseline.push(started.elapsed());

        let out = work.path().join(format!("archive-{run}.tar.zst"));
        let started = Instant::now();
        let file = File::create(&out)?;
        let writer = pack_dir(
            &pack,
            ArchiveHasher::tee(BufWriter::with_capacity(MIB, file)),
        )?;
        let (buffered, digest) = writer.finish();
        let file = buffered.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        publish.push(started.elapsed());
        archive_size = digest.info.size;
        fs::remove_file(&out)?;
    }

    let best = |times: &[Duration]| times.iter().min().copied().unwrap_or_default();
    let rate = |time: Duration| input as f64 / MIB as f64 / time.as_secs_f64();
    let (base, pub_) = (rate(best(&baseline)), rate(best(&publish)));
    println!(
        "baseline  blake3 of file bytes (page cache): {base:8.1} MiB/s  (best of {RUNS}: {:?})",
        best(&baseline)
    );
    println!(
        "publish   pack_dir + ArchiveHasher + fsync:  {pub_:8.1} MiB/s  (best of {RUNS}: {:?})",
        best(&publish)
    );
    println!(
        "archive: {:.1} MiB ({:.1}% of input)",
        archive_size as f64 / MIB as f64,
        100.0 * archive_size as f64 / input as f64
    );
    println!(
        "ratio publish/baseline: {:.2}x (target >= 0.5x)",
        pub_ / base
    );
    let (zstd, gzip) = (rate(best(&tar_zstd)), rate(best(&tar_gzip)));
    println!(
        "tar | zstd -3:                              {zstd:8.1} MiB/s  (best of {RUNS}: {:?})",
        best(&tar_zstd)
    );
    println!(
        "tar | gzip -6:                              {gzip:8.1} MiB/s  (best of {RUNS}: {:?})",
        best(&tar_gzip)
    );
    println!(
        "ratio publish/(tar | zstd -3): {:.2}x (target >= 0.9x); publish/(tar | gzip -6): {:.2}x",
        pub_ / zstd,
        pub_ / gzip
    );
    breakdown(&pack, work.path(), input, archive_size)
}

/// Where the time goes: the same work with parts taken away (one run each), and the
/// disk alone writing and fsyncing archive-sized data.
fn breakdown(pack: &Path, work: &Path, input: u64, archive_size: u64) -> anyhow::Result<()> {
    let rate = |time: Duration| input as f64 / MIB as f64 / time.as_secs_f64();
    println!("breakdown (one run each, MiB/s of input):");
    for level in [-5, -1, 1, 3] {
        let started = Instant::now();
        pack_dir_at_level(pack, std::io::sink(), level)?;
        let bare = started.elapsed();
        let started = Instant::now();
        let (_, digest) = pack_dir_at_level(pack, ArchiveHasher::new(), level)?.finish();
        let hashed = started.elapsed();
        let out = work.join("variant.tar.zst");
        let started = Instant::now();
        let file = File::create(&out)?;
        let writer = pack_dir_at_level(
            pack,
            ArchiveHasher::tee(BufWriter::with_capacity(MIB, file)),
            level,
        )?;
        let file = writer.finish().0.into_inner().map_err(|e| e.into_error())?;
        let written = started.elapsed();
        file.sync_all()?;
        let synced = started.elapsed();
        fs::remove_file(&out)?;
        println!(
            "  level {level}: pack {:7.1} | +hash {:7.1} | +write {:7.1} | +fsync {:7.1}  (archive {:.1} MiB)",
            rate(bare),
            rate(hashed),
            rate(written),
            rate(synced),
            digest.info.size as f64 / MIB as f64
        );
    }
    let out = work.join("disk.bin");
    let block = vec![0x5au8; MIB];
    let started = Instant::now();
    let mut file = File::create(&out)?;
    for _ in 0..(archive_size as usize).div_ceil(MIB) {
        file.write_all(&block)?;
    }
    file.sync_all()?;
    let disk = started.elapsed();
    fs::remove_file(&out)?;
    println!(
        "  disk alone: write+fsync {:.1} MiB: {:.1} MiB/s",
        archive_size as f64 / MIB as f64,
        archive_size as f64 / MIB as f64 / disk.as_secs_f64()
    );
    Ok(())
}

/// Writes the pack; returns every file with its size.
fn generate(pack: &Path) -> anyhow::Result<Vec<(PathBuf, u64)>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6767_656e);
    fs::create_dir_all(pack.join("templates"))?;
    fs::create_dir_all(pack.join("assets"))?;
    let manifest = pack.join("package.toml");
    fs::write(
        &manifest,
        "[package]\nname = \"bench-pack\"\nversion = \"1.0.0\"\ndescription = \"benchmark pack\"\n",
    )?;
    let mut files = vec![(manifest.clone(), fs::metadata(&manifest)?.len())];
    const WORDS: &[&str] = &[
        "let", "fn", "struct", "impl", "match", "self", "config", "request", "response", "handler",
        "error", "result", "value", "String", "Vec", "Option", "async", "await", "router", "state",
        "name", "tracing", "info", "debug", "into", "from", "clone",
    ];
    for i in 0..TEXT_FILES {
        let path = pack.join(format!("templates/t{i:04}.rs.tmpl"));
        let mut text = String::with_capacity(TEXT_FILE_SIZE + 128);
        while text.len() < TEXT_FILE_SIZE {
            let indent = rng.gen_range(0..4) * 4;
            text.push_str(&" ".repeat(indent));
            for _ in 0..rng.gen_range(3..10) {
                text.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
                text.push_str(if rng.gen_bool(0.3) { "_" } else { " " });
            }
            text.push_str(&format!("{{{{ field_{} }}}};\n", rng.gen_range(0..1000)));
        }
        text.truncate(TEXT_FILE_SIZE);
        fs::write(&path, &text)?;
        files.push((path, TEXT_FILE_SIZE as u64));
    }
    let mut block = vec![0u8; RANDOM_FILE_SIZE];
    for i in 0..RANDOM_FILES {
        let path = pack.join(format!("assets/blob{i:02}.bin"));
        rng.fill_bytes(&mut block);
        File::create(&path)?.write_all(&block)?;
        files.push((path, RANDOM_FILE_SIZE as u64));
    }
    Ok(files)
}

fn hash_files(files: &[(PathBuf, u64)]) -> anyhow::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 256 * 1024];
    for (path, _) in files {
        let mut file = File::open(path)?;
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
        }
    }
    Ok(hasher.finalize())
}
