//! Probe of issue #10: does a Temporal Rust SDK worker keep memory per activity task?
//!
//! `../shared/notes/temporal-rust-sdk.md` ("Gaps and risks", 2) read in the SDK's source that
//! `ActivityHalf::task_tokens_to_cancels` gets an entry per activity task and nothing removes it.
//! This measures it: a worker in this process (the same SDK, the real Temporal dev server) runs
//! rounds of workflows that each run no-op activities, and a counting global allocator reports
//! the live heap after each round, once every workflow of the round has completed (so its state
//! has left the workflow cache). Two shapes with the same number of activities per round — many
//! activities in few workflows, and few activities in many workflows — tell per-activity from
//! per-workflow growth.
//!
//! A third shape measures what a workflow evicted from the cache while it waits leaves behind:
//! rounds of workflows that each start a one-hour timer and wait, on a second worker whose cache
//! holds 10, so all but the last ten of every round are evicted with their timer pending. The
//! upstream workflow crate leaked the whole context of each such run (a reference cycle through
//! the cancellation token; patched in `vendor/temporalio-workflow`, see `vendor/README.md`).
//!
//! Run with `cargo bench --bench activity_map`. Knobs: `PROBE_ROUNDS` (6), `PROBE_ACTIVITIES`
//! (activities per round, 2000), `PROBE_WAITERS` (waiting workflows per round, 300).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{ActivityOptions, Worker, WorkerOptions, WorkflowContext, WorkflowResult};
use zengine_workers::testing::{WorkerThread, start_ephemeral};
use zengine_workers::{TemporalSettings, connect};

/// Bytes currently allocated through the global allocator.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

pub struct ProbeActivities;

#[activities]
impl ProbeActivities {
    #[activity(name = "ProbeNoop")]
    pub async fn noop(
        self: Arc<Self>,
        _ctx: ActivityContext,
        n: u64,
    ) -> Result<u64, ActivityError> {
        Ok(n)
    }
}

#[workflow]
#[derive(Default)]
pub struct ProbeWorkflow;

#[workflow_methods]
impl ProbeWorkflow {
    #[run(name = "ProbeActivities")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, activities: u64) -> WorkflowResult<u64> {
        let mut sum = 0;
        for i in 0..activities {
            sum += ctx
                .execute_activity(
                    ProbeActivities::noop,
                    i,
                    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30)).build(),
                )
                .await?;
        }
        Ok(sum)
    }
}

/// Waits on a one-hour timer: evicted from a small cache while the timer is pending.
#[workflow]
#[derive(Default)]
pub struct ProbeWaiter;

#[workflow_methods]
impl ProbeWaiter {
    #[run(name = "ProbeWaiter")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, _n: u64) -> WorkflowResult<u64> {
        ctx.timer(Duration::from_secs(3600)).await;
        Ok(0)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `runs` at most 20 at a time: the dev server's SQLite is the bottleneck anyway.
async fn in_batches<F: std::future::Future>(runs: impl IntoIterator<Item = F>) {
    let mut pending = runs.into_iter().collect::<Vec<_>>();
    while !pending.is_empty() {
        let batch: Vec<_> = pending.drain(..pending.len().min(20)).collect();
        join_all(batch).await;
    }
}

/// Prints one row of the table (after round `round`, counted from 0); returns the live heap.
fn report(shape: &str, round: u64, acts: u64, wfs: u64, started: Instant) -> isize {
    let live = LIVE.load(Ordering::Relaxed);
    println!(
        "| {shape} | {} | {acts} | {wfs} | {:.2} | {:.1} | {:.1} s |",
        round + 1,
        live as f64 / 1048576.0,
        rss_kib() as f64 / 1024.0,
        started.elapsed().as_secs_f64()
    );
    live
}

#[tokio::main]
async fn main() {
    let rounds = env_u64("PROBE_ROUNDS", 6).max(2);
    let per_round = env_u64("PROBE_ACTIVITIES", 2000).max(100);
    let server = start_ephemeral();
    let settings = TemporalSettings {
        address: server.address().to_owned(),
        ..TemporalSettings::default()
    };
    let client = connect(&settings, "probe").await.unwrap();
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).unwrap();
    let worker = WorkerThread::spawn(
        Worker::new(
            &runtime,
            client.clone(),
            WorkerOptions::new("activity-probe")
                .register_workflow::<ProbeWorkflow>()
                .unwrap()
                .register_activities(ProbeActivities)
                .build(),
        )
        .unwrap(),
    );
    let waiter_worker = WorkerThread::spawn(
        Worker::new(
            &runtime,
            client.clone(),
            WorkerOptions::new("eviction-probe")
                .register_workflow::<ProbeWaiter>()
                .unwrap()
                .max_cached_workflows(10_usize)
                .build(),
        )
        .unwrap(),
    );

    println!(
        "| shape | round | activities so far | workflows so far | live heap (MiB) | RSS (MiB) | round time |\n|---|---|---|---|---|---|---|"
    );
    let mut results = Vec::new();
    // (workflows per round, activities per workflow): same activities per round.
    for (shape, workflows) in [
        ("200 per workflow", per_round / 200),
        ("5 per workflow", per_round / 5),
    ] {
        let per_workflow = per_round / workflows;
        let (mut acts, mut wfs) = (0u64, 0u64);
        let mut points = Vec::new();
        for round in 0..rounds {
            let started = Instant::now();
            in_batches((0..workflows).map(|w| {
                let client = client.clone();
                let id = format!("probe-{}-{round}-{w}", shape.split(' ').next().unwrap());
                async move {
                    let handle = client
                        .start_workflow(
                            ProbeWorkflow::run,
                            per_workflow,
                            WorkflowStartOptions::new("activity-probe", id).build(),
                        )
                        .await
                        .expect("start");
                    handle
                        .get_result(WorkflowGetResultOptions::default())
                        .await
                        .expect("result")
                }
            }))
            .await;
            acts += workflows * per_workflow;
            wfs += workflows;
            tokio::time::sleep(Duration::from_secs(2)).await;
            points.push((acts, wfs, report(shape, round, acts, wfs, started)));
        }
        results.push((shape, points));
    }
    // Waiting workflows, evicted with their timer pending.
    let shape = "waiting, evicted";
    let waiters = env_u64("PROBE_WAITERS", 300).max(20);
    let mut points = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        in_batches((0..waiters).map(|w| {
            let client = client.clone();
            let id = format!("waiter-{round}-{w}");
            async move {
                client
                    .start_workflow(
                        ProbeWaiter::run,
                        w,
                        WorkflowStartOptions::new("eviction-probe", id).build(),
                    )
                    .await
                    .expect("start")
            }
        }))
        .await;
        // Every waiter's first task (start the timer) has run by then; all but ten evicted.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let wfs = (round + 1) * waiters;
        points.push((wfs, report(shape, round, 0, wfs, started)));
    }
    let ((w0, l0), (w1, l1)) = (points[0], *points.last().unwrap());

    println!();
    println!(
        "{shape}: live heap grew {:.2} MiB over {} workflows evicted while waiting after the first round = {:.0} bytes per evicted workflow",
        (l1 - l0) as f64 / 1048576.0,
        w1 - w0,
        (l1 - l0) as f64 / (w1 - w0) as f64,
    );
    for (shape, points) in &results {
        // Growth from the end of the first (warm-up) round to the end of the last.
        let (a0, w0, l0) = points[0];
        let (a1, w1, l1) = *points.last().unwrap();
        println!(
            "{shape}: live heap grew {:.2} MiB over {} activities in {} workflows after the first round = {:.0} bytes per activity ({:.0} bytes per workflow if all of it were per workflow)",
            (l1 - l0) as f64 / 1048576.0,
            a1 - a0,
            w1 - w0,
            (l1 - l0) as f64 / (a1 - a0) as f64,
            (l1 - l0) as f64 / (w1 - w0) as f64,
        );
    }
    worker.stop().await;
    waiter_worker.stop().await;
    let _ = server.stop(Duration::from_secs(10));
}
