//! OCR benchmark: per-image latency of one engine on one core, images per second of a pool of
//! engines (one thread each, as the `ocr` worker runs them), and resident memory.
//!
//! `OMP_THREAD_LIMIT=1 cargo bench -p zengine-ocr --bench ocr [-- DIR]` (default
//! `$ZENGINE_SHARED_DIR/data/ocr/dev`). Results go to `docs/benchmarks.md` by hand.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use zengine_ocr::Engine;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if std::env::var("OMP_THREAD_LIMIT").as_deref() != Ok("1") {
        eprintln!("warning: OMP_THREAD_LIMIT is not 1; OpenMP threads distort the numbers");
    }
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("ZENGINE_SHARED_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
                })
                .join("data/ocr/dev")
        });
    let mut images: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    images.sort();
    let rss_start = rss_kib("VmRSS:");

    // Latency: one engine, one thread, every image 3 times after a warm-up read.
    let started = Instant::now();
    let mut engine = Engine::new(None, "spa").expect("Tesseract with spa data");
    let init = started.elapsed();
    engine.read(&images[0].1).unwrap();
    let rss_one = rss_kib("VmRSS:");
    let mut latencies = Vec::new();
    let mut slowest: Vec<(Duration, &str, Vec<&'static str>)> = Vec::new();
    for _ in 0..3 {
        for (name, bytes) in &images {
            let t = Instant::now();
            let passes = engine.read(bytes).map(|r| r.passes).unwrap_or_default();
            latencies.push(t.elapsed());
            slowest.push((t.elapsed(), name, passes));
        }
    }
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    latencies.sort();
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    drop(engine);

    // Throughput: a pool of N engines on N threads sharing the images.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let mut pools = Vec::new();
    for threads in [1, cores] {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let total = images.len() * 2;
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let mut engine = Engine::new(None, "spa").unwrap();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let _ = engine.read(&images[i % images.len()].1);
                    }
                });
            }
        });
        pools.push((threads, total as f64 / t.elapsed().as_secs_f64()));
    }
    let peak = rss_kib("VmHWM:");

    println!("## OCR ({} images from {})\n", images.len(), dir.display());
    println!("| measure | value |\n|---|---|");
    println!(
        "| engine start-up (2 Tesseract instances) | {:.0} ms |",
        ms(init)
    );
    println!(
        "| latency per image, one engine, one core (n={}) | p50 {:.0} ms, p95 {:.0} ms, mean {:.0} ms, max {:.0} ms |",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 95.0)),
        ms(mean),
        ms(*latencies.last().unwrap())
    );
    for (threads, per_sec) in &pools {
        println!("| throughput, pool of {threads} engine(s) | {per_sec:.1} images/s |");
    }
    let slow: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(d, name, passes)| format!("{name} {:.0} ms ({})", ms(*d), passes.join("+")))
        .collect();
    println!("| slowest reads | {} |", slow.join("; "));
    println!(
        "| resident memory: process before / with one engine / peak with the {cores}-engine pool | {} / {} / {} MiB |",
        rss_start / 1024,
        rss_one / 1024,
        peak / 1024
    );
}
