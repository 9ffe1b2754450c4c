//! The run from start to end: plan (fresh) or resume, then rounds of create, follow,
//! collect and retry, then costs, output and summary.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::anthropic::Anthropic;
use super::client::{CallError, Client};
use super::gemini::Gemini;
use super::input::{self, Input};
use super::ledger::{self, Access};
use super::openai::OpenAi;
use super::plan::{self, PlanError, Preview};
use super::progress::{Log, Snapshot};
use super::provider::{Limits, Phase as Up, Provider};
use super::state::{Batch, Item, Phase, State, Store, VERSION};
use super::{Options, RunError, collect, output, retry, split, submit, summary};

/// Runs (or resumes) the batch job `o` describes.
pub async fn run(o: Options) -> Result<(), RunError> {
    let client = || client_of(&o).map_err(RunError::Failed);
    let kind = match o.provider.as_deref() {
        Some(k) => k.to_string(),
        None => detect(&o),
    };
    match kind.as_str() {
        "anthropic" => run_with(&o, Anthropic { client: client()?, prefix: String::new() }).await,
        // The gateway serves every upstream under `/NAME` (OpenAI's also at the root); the
        // simulator serves each API at its root.
        "openai" => {
            let mut p = OpenAi::new(client()?, "/openai".into(), "openai".into());
            if !answers(&o, &p).await? {
                p.prefix = String::new();
            }
            run_with(&o, p).await
        }
        "gemini" => {
            let mut p = gemini(&o, client()?, "/gemini".into(), "gemini");
            if !answers(&o, &p).await? {
                p.prefix = String::new();
            }
            run_with(&o, p).await
        }
        // Another upstream, served under `/NAME`: its kind is whichever API answers there.
        name if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            let prefix = format!("/{name}");
            let a = Anthropic { client: client()?, prefix: prefix.clone() };
            if answers(&o, &a).await? {
                return run_with(&o, a).await;
            }
            // Gemini before OpenAI: a Gemini surface also answers `/v1/batches` (its `v1`
            // API version), an OpenAI one never answers `/v1beta/batches`.
            let g = gemini(&o, client()?, prefix.clone(), name);
            if answers(&o, &g).await? {
                return run_with(&o, g).await;
            }
            let p = OpenAi::new(client()?, prefix, name.into());
            if answers(&o, &p).await? {
                return run_with(&o, p).await;
            }
            Err(RunError::Usage(format!(
                "--provider {name}: {} serves no Anthropic, OpenAI or Gemini batches under /{name}",
                o.gateway
            )))
        }
        other => Err(RunError::Usage(format!(
            "--provider `{other}`: expected anthropic, openai, gemini or an upstream name"
        ))),
    }
}

fn gemini(o: &Options, client: Client, prefix: String, name: &str) -> Gemini {
    let mut g = Gemini::new(client, prefix, name.into(), o.model.clone());
    if let Some(n) = o.gemini_inline_bytes {
        g.inline_max = n;
    }
    g
}

/// The provider the input's first request looks like (`--provider` not given): Anthropic
/// `params`, an OpenAI batch line (`method`, `url`, `body`), Gemini `request`; Anthropic
/// for templated items and anything else (its message then says what it expected).
fn detect(o: &Options) -> String {
    use std::io::BufRead;
    if o.template.is_some() {
        return "anthropic".into();
    }
    let first = std::fs::File::open(&o.file).ok().and_then(|f| {
        std::io::BufReader::new(f).lines().map_while(Result::ok).find(|l| !l.trim().is_empty())
    });
    let v: serde_json::Value =
        first.and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default();
    let kind = if v.get("params").is_some() {
        "anthropic"
    } else if v.get("body").is_some() && v.get("url").is_some() {
        "openai"
    } else if v.get("request").is_some() {
        "gemini"
    } else {
        "anthropic"
    };
    kind.into()
}

/// Whether the provider's batches API answers at its prefix (404: not there).
async fn answers(o: &Options, p: &impl Provider) -> Result<bool, RunError> {
    match p.list(None, 1).await {
        Ok(_) => Ok(true),
        Err(CallError::Status { status: 404, .. }) => Ok(false),
        Err(e @ CallError::Status { status: 401 | 403, .. }) => Err(RunError::Usage(format!(
            "{}: the gateway refused the project key from ${}: {e}",
            o.gateway, o.key_env
        ))),
        Err(e) => Err(RunError::Failed(anyhow::anyhow!("{}: {e}", o.gateway))),
    }
}

/// One cheap read before anything else: a wrong key or provider name is told at once.
async fn probe(o: &Options, p: &impl Provider) -> Result<(), RunError> {
    if answers(o, p).await? {
        return Ok(());
    }
    Err(RunError::Usage(format!(
        "--provider {}: {} serves no {} batches there",
        p.name(),
        o.gateway,
        p.name()
    )))
}

/// The provider's limits, lowered by the flags (or, where the provider's are UNCONFIRMED
/// defaults, set by them).
fn limits(o: &Options, p: &impl Provider) -> Limits {
    let l = p.limits();
    let (req, bytes) = (o.max_batch_requests.unwrap_or(l.max_requests), o.max_batch_bytes);
    if p.limits_documented() {
        Limits {
            max_requests: req.clamp(1, l.max_requests),
            max_bytes: bytes.unwrap_or(l.max_bytes).min(l.max_bytes),
        }
    } else {
        Limits { max_requests: req.max(1), max_bytes: bytes.unwrap_or(l.max_bytes) }
    }
}

fn fingerprint(o: &Options, p: &impl Provider, input: &Input, l: Limits) -> String {
    let cap = o.max_batch_usd.map(|m| m.usd_exact()).unwrap_or_default();
    let text =
        format!("{:032x}/{}/{}/{}/{cap}", input.fingerprint, p.name(), l.max_requests, l.max_bytes);
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

async fn run_with(o: &Options, p: impl Provider) -> Result<(), RunError> {
    let store = Store::new(o.state.clone());
    let input =
        input::load(&o.file, o.template.as_deref(), &store.work, &p).map_err(RunError::Usage)?;
    probe(o, &p).await?;
    let lim = limits(o, &p);
    let fp = fingerprint(o, &p, &input, lim);
    let log = Log::new();
    if o.dry_run {
        // Whatever the state file holds, a dry run only prices and prints.
        fresh(o, &p, &input, lim, fp).await?;
        return Ok(());
    }
    let mut st = match store.load()? {
        Some(st) if st.fingerprint != fp => {
            return Err(RunError::Usage(format!(
                "{}: this state file belongs to another input or other splitting options; pass another --state or remove it",
                o.state.display()
            )));
        }
        Some(st) => {
            log.line(&format!(
                "resuming from {} ({} batches recorded)",
                o.state.display(),
                st.batches.len()
            ));
            st
        }
        None => {
            let Some(st) = fresh(o, &p, &input, lim, fp).await? else { return Ok(()) };
            store.save(&st)?;
            st
        }
    };
    let client = client_of(o)?;
    let mut access = Access::Unknown;
    let work = drive(o, &p, &client, &input, &store, &mut st, lim, &log, &mut access);
    tokio::select! {
        r = work => r?,
        _ = tokio::signal::ctrl_c() => {
            log.finish();
            let running = st_running(&store);
            return Err(RunError::Interrupted(format!(
                "interrupted: {running} batches left running upstream; state saved in {}; run the same command again to resume",
                o.state.display()
            )));
        }
    }
    log.finish();
    output::write(&p, &input, &store, &st, o.order, &o.out)?;
    let s = summary::build(&input, &st);
    if let Some(path) = &o.summary_json {
        let mut text = serde_json::to_vec_pretty(&s.json).map_err(anyhow::Error::new)?;
        text.push(b'\n');
        super::state::write_atomic(path, &text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "results: {} ({} lines)", o.out.display(), input.len());
    let _ = out.write_all(s.table.as_bytes());
    if s.all_succeeded {
        Ok(())
    } else {
        Err(RunError::ItemsFailed(
            s.json["failed"].as_u64().unwrap_or(0) as usize
                + s.json["pending"].as_u64().unwrap_or(0) as usize,
        ))
    }
}

fn client_of(o: &Options) -> anyhow::Result<Client> {
    Client::new(&o.gateway, o.key.clone(), o.admin_token.clone())
}

/// Batches still running according to the state file on disk.
fn st_running(store: &Store) -> usize {
    store
        .load()
        .ok()
        .flatten()
        .map_or(0, |s| s.batches.iter().filter(|b| b.phase == Phase::Running).count())
}

/// The first run: split, price, show, check budgets, ask. `None`: stop here (dry run).
async fn fresh(
    o: &Options,
    p: &impl Provider,
    input: &Input,
    lim: Limits,
    fp: String,
) -> Result<Option<State>, RunError> {
    let all: Vec<u32> = (0..input.len() as u32).collect();
    let chunks = split::split(input, &all, lim, p.body_overhead()).map_err(RunError::Usage)?;
    let client = client_of(o)?;
    let pv = plan::preview(&client, p, input, chunks, o.project.as_deref(), o.max_batch_usd)
        .await
        .map_err(|e| match e {
            PlanError::Input(m) => RunError::Usage(format!("{}: {m}", o.file.display())),
            PlanError::Call(c) => RunError::Failed(anyhow::anyhow!(
                "estimate: {c}{}",
                if c.status().is_some_and(|s| s == 401 || s == 403) { " (pass --admin-token-env if this gateway needs the admin token for /api/estimate)" } else { "" }
            )),
        })?;
    let text = super::plan_text::render(o, p.name(), input.len(), lim, &pv);
    print!("{text}");
    let _ = std::io::stdout().flush();
    let broken: Vec<_> = pv.budgets.iter().filter(|b| !b.fits()).collect();
    if !broken.is_empty() {
        let names: Vec<String> = broken.iter().map(|b| super::plan_text::budget_line(b)).collect();
        return Err(RunError::Budget(format!(
            "the plan does not fit: {}; nothing was sent",
            names.join("; ")
        )));
    }
    if o.dry_run {
        println!("dry run: nothing was sent");
        return Ok(None);
    }
    if !o.yes {
        if !std::io::stdin().is_terminal() {
            return Err(RunError::Usage(
                "not a terminal: pass --yes to submit without asking (or --dry-run)".into(),
            ));
        }
        eprint!("submit {} batches? [y/N] ", pv.batches.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).map_err(anyhow::Error::new)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(RunError::Usage("not confirmed: nothing was sent".into()));
        }
    }
    Ok(Some(State {
        version: VERSION,
        fingerprint: fp,
        provider: p.name().to_string(),
        items: vec![Item::default(); input.len()],
        batches: batches_of(pv, 0, 1),
        foreign: Vec::new(),
    }))
}

fn batches_of(pv: Preview, first_seq: u32, attempt: u32) -> Vec<Batch> {
    pv.batches
        .into_iter()
        .enumerate()
        .map(|(i, pb)| {
            let mut b = Batch::planned(first_seq + i as u32, attempt, pb.items, pb.bytes);
            b.worst_usd = pb.price.as_ref().map(|p| p.worst.usd_exact());
            b.expected_usd = pb.price.as_ref().map(|p| p.expected.usd_exact());
            b
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    o: &Options,
    p: &impl Provider,
    client: &Client,
    input: &Input,
    store: &Store,
    st: &mut State,
    lim: Limits,
    log: &Log,
    access: &mut Access,
) -> Result<(), RunError> {
    let mut wait = o.poll_min;
    loop {
        for k in 0..st.batches.len() {
            if matches!(st.batches[k].phase, Phase::Planned | Phase::Creating) {
                submit::ensure_created(p, input, store, st, k, log).await?;
                log.status(&Snapshot::of(st));
            }
        }
        let running: Vec<usize> =
            (0..st.batches.len()).filter(|&k| st.batches[k].phase == Phase::Running).collect();
        if running.is_empty() {
            let due = retry::due(st, o.max_attempts);
            if due.is_empty() {
                store.save(st)?;
                break;
            }
            let attempt = due.iter().map(|&i| st.items[i as usize].attempts).max().unwrap_or(0) + 1;
            let chunks =
                split::split(input, &due, lim, p.body_overhead()).map_err(RunError::Usage)?;
            let pv = plan::preview(client, p, input, chunks, o.project.as_deref(), o.max_batch_usd)
                .await
                .map_err(|e| anyhow::anyhow!("pricing retry batches: {e}"))?;
            let worst = pv
                .total
                .as_ref()
                .map(|t| format!(", worst case ${}", t.worst.usd_rounded(4)))
                .unwrap_or_default();
            log.line(&format!(
                "attempt {attempt}: retrying {} requests in {} batches{worst}",
                due.len(),
                pv.batches.len()
            ));
            let first = st.batches.len() as u32;
            st.batches.extend(batches_of(pv, first, attempt));
            store.save(st)?;
            continue;
        }
        tokio::time::sleep(wait).await;
        let mut changed = false;
        for k in running {
            let id = st.batches[k].id.clone().unwrap_or_default();
            let view = match p.get(&id).await {
                Ok(v) => v,
                Err(e) => {
                    log.line(&format!("batch {}: {id}: {e} (will look again)", st.batches[k].seq));
                    continue;
                }
            };
            if view.counts != st.batches[k].counts {
                changed = true;
                st.batches[k].counts = view.counts;
            }
            if view.phase == Up::Ended {
                changed = true;
                if let Some(f) = &view.failure {
                    st.batches[k].error = Some(f.reason.clone());
                }
                collect::collect(p, input, store, st, k, view.failure.as_ref(), log).await?;
                let b = &st.batches[k];
                if b.phase == Phase::Collected {
                    log.line(&format!(
                        "batch {} (attempt {}): {} ended: {} succeeded, {} errored, {} expired, {} canceled",
                        b.seq, b.attempt, id, b.counts.succeeded, b.counts.errored, b.counts.expired, b.counts.canceled
                    ));
                }
            }
        }
        // Counts are for the display only: the state is saved when a phase changes
        // (`collect` saves its own) or a cost is read.
        let (_, costed) = ledger::refresh(client, st, access).await;
        if costed {
            store.save(st)?;
        }
        log.status(&Snapshot::of(st));
        wait = if changed { o.poll_min } else { (wait.mul_f64(1.5)).min(o.poll_max) };
    }
    settle(o, client, st, store, log, access).await
}

/// Waits (bounded) for the ledger to settle the collected batches, for exact costs.
async fn settle(
    o: &Options,
    client: &Client,
    st: &mut State,
    store: &Store,
    log: &Log,
    access: &mut Access,
) -> Result<(), RunError> {
    let deadline = Instant::now() + o.settle_timeout;
    let mut wait = Duration::from_millis(100);
    loop {
        let (left, _) = ledger::refresh(client, st, access).await;
        store.save(st)?;
        log.status(&Snapshot::of(st));
        if *access == Access::No {
            log.line("batch costs: no ledger readable at this server with these credentials (a simulator, or a gateway that needs --admin-token-env); the summary shows tokens only");
            return Ok(());
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            log.line(&format!("batch costs: {left} batches not settled in the ledger yet; run the same command again later for their cost"));
            return Ok(());
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(o.poll_max.max(Duration::from_millis(100)));
    }
}
